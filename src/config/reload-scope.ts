import { isDeepStrictEqual } from 'node:util';
import type { Config } from './schema.ts';

/**
 * What a reload (SIGHUP, POST /v1/reload) may change in a running daemon, and what needs a
 * restart: one table over every config section, so a section added to the schema does not
 * compile until it says which it is. `reload`: the daemon applies a new value at once (each
 * component reads it per use or is rebuilt and swapped whole). `restart`: the value is bound into
 * something made at start (a listening socket, the storage, a thread, a timer), so a reload keeps
 * the running value and reports the new one as waiting for a restart.
 *
 * A check that spans sections (dkim.fallback must name a dkim domain, a reaction rule's provider
 * must exist, an IP's warm-up plan must be known) must relate settings of the same scope: a
 * reload applies the reloadable ones of a file that was validated whole, keeping the running
 * value of the others.
 */

export type ReloadScope = 'reload' | 'restart';

type SectionScope<T> = ReloadScope | { readonly [K in keyof NonNullable<T>]-?: ReloadScope };

export const RELOAD_SCOPE: { readonly [K in keyof Config]-?: SectionScope<Config[K]> } = {
  hostname: 'restart',
  dataDir: 'restart',
  storage: 'restart',
  redis: 'restart',
  smtp: {
    users: 'reload',
    // The listeners' sockets and the smtp-server options made with them.
    listeners: 'restart',
    tls: 'restart',
    trustedNetworks: 'restart',
    maxMessageBytes: 'restart',
    maxRecipients: 'restart',
    maxCommandBytes: 'restart',
    maxConnectionsPerClient: 'restart',
    maxConnections: 'restart',
    sessionTimeout: 'restart',
    idleTimeout: 'restart',
    commandTimeout: 'restart',
    minDataRate: 'restart',
    reservedConnectionShare: 'restart',
    maxBufferedBytes: 'restart',
    authFailures: 'restart',
  },
  api: { tokens: 'reload', listen: 'restart', authFailures: 'restart' },
  audit: 'restart',
  delivery: {
    routes: 'reload',
    mxPort: 'reload',
    maxAge: 'reload',
    retry: 'reload',
    dsn: 'reload',
    shutdownTimeout: 'reload',
    concurrency: 'restart',
    idleConnectionTimeout: 'restart',
    timeouts: 'restart',
    lease: 'restart',
    deadSite: 'restart',
    // Read per delivery: a new mode or domain policy applies to the next attempt.
    tls: 'reload',
    tlsPolicies: 'reload',
    // Bound into the policy resolver and the report sender made at start.
    mtaSts: 'restart',
    tlsReports: 'restart',
  },
  ips: 'reload',
  pools: 'reload',
  tenants: 'reload',
  warmup: 'reload',
  providers: 'reload',
  shaping: 'reload',
  // The score's window and sample count shape the counts kept since start.
  reputation: { floor: 'reload', window: 'restart', minSamples: 'restart' },
  // The watch reads the lists, interval and timeout at each check; the resolver and its servers are made at start.
  blocklists: { enabled: 'reload', interval: 'reload', timeout: 'reload', lists: 'reload', servers: 'restart' },
  reactionRules: 'reload',
  bounceRules: 'reload',
  // Read per message (the action) and per failure (the rules).
  suppression: 'reload',
  dkim: { domains: 'reload', fallback: 'reload', expiry: 'reload', workers: 'restart' },
  returnPath: 'reload',
  // The listener's socket and the Fastify instance made with its rate limit and proxies; the
  // links (secret, URLs, entries) are read per message and per request.
  unsubscribe: {
    listen: 'restart',
    rateLimit: 'restart',
    trustedProxies: 'restart',
    secret: 'reload',
    previousSecrets: 'reload',
    enabled: 'reload',
    publicBaseUrl: 'reload',
    mailto: 'reload',
    domains: 'reload',
  },
  // The listeners' sockets, and the limits of the sessions made with them; what a message may
  // be for and how long it may take are read per message.
  inbound: {
    listeners: 'restart',
    maxMessageBytes: 'restart',
    maxConnections: 'restart',
    maxConnectionsPerClient: 'restart',
    maxRecipients: 'reload',
    fblAddresses: 'reload',
    fblReporters: 'reload',
    processingTimeout: 'reload',
  },
  // Bound into the dispatcher and its HTTP agents at start.
  webhooks: 'restart',
  log: 'restart',
};

export interface ReloadPlan {
  /** The config to run with: the new file's, with the running value of every `restart` setting. */
  config: Config;
  /** The reloadable settings whose value changes (config paths, e.g. `ips`, `smtp.users`). */
  changed: string[];
  /** The settings whose new value waits for a restart. */
  restartRequired: string[];
}

/** Compares the running config with a new one, section by section (see RELOAD_SCOPE). */
export function planReload(running: Config, next: Config): ReloadPlan {
  const changed: string[] = [];
  const restartRequired: string[] = [];
  const config: Record<string, unknown> = { ...next };
  const weigh = (path: string, scope: ReloadScope, target: Record<string, unknown>, key: string, before: Record<string, unknown>, after: Record<string, unknown>) => {
    if (isDeepStrictEqual(before[key], after[key])) return;
    if (scope === 'reload') return void changed.push(path);
    restartRequired.push(path);
    // An optional setting the running config lacks stays absent, as parsing leaves it.
    if (Object.hasOwn(before, key)) target[key] = before[key];
    else delete target[key];
  };
  for (const [key, scope] of Object.entries(RELOAD_SCOPE) as Array<[keyof Config, ReloadScope | Record<string, ReloadScope>]>) {
    if (typeof scope === 'string') {
      weigh(key, scope, config, key, running, next);
      continue;
    }
    const section: Record<string, unknown> = { ...(next[key] as object) };
    for (const [sub, subScope] of Object.entries(scope)) {
      weigh(`${key}.${sub}`, subScope, section, sub, running[key] as Record<string, unknown>, next[key] as Record<string, unknown>);
    }
    config[key] = section;
  }
  return { config: config as Config, changed, restartRequired };
}

/**
 * What a reload did: applied (what changed, what waits for a restart, what the operator should
 * know of its effect: config/reload-warnings.ts), refused with every problem of the file, or not
 * tried because the daemon is starting or stopping (`unavailable` says which).
 */
export type ReloadOutcome =
  | { ok: true; source: string; changed: string[]; restartRequired: string[]; warnings: string[] }
  | { ok: false; source: string; problems: string[] }
  | { ok: false; source: string; unavailable: string };
