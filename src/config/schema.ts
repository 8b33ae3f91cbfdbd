import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { canonicalIp } from '../mail/ip-address.ts';
import { apiAuthFailuresSchema, apiNameSchema, apiTokensSchema } from './api-schema.ts';
import { blocklistsConfigSchema } from './blocklist-schema.ts';
import { dkimConfigSchema } from './dkim-schema.ts';
import { inboundConfigSchema } from './inbound-schema.ts';
import { mtaStsConfigSchema, tlsModeSchema, tlsPoliciesSchema, tlsReportsConfigSchema } from './outbound-tls-schema.ts';
import { durationSchema, positiveDurationSchema } from './duration.ts';
import { dataName, ipWarmupSchema, providersConfigSchema, reputationConfigSchema, shapingConfigSchema, warmupConfigSchema } from './pool-schemas.ts';
import { verpConfigSchema } from './return-path-schema.ts';
import { bounceRulesConfigSchema, reactionRulesConfigSchema } from './rule-schemas.ts';
import { suppressionConfigSchema } from './suppression-schema.ts';
import { tenantsSchema } from './tenant-schema.ts';
import { unsubscribeConfigSchema } from './unsubscribe-schema.ts';
import { webhooksConfigSchema } from './webhooks-schema.ts';

const ipAddress = z.string().refine((v) => isIP(v) !== 0, { message: 'not an IP address' });

/** An egress address in its one spelling, so recipients, pool state and API requests that name it compare equal. */
const egressAddress = ipAddress.transform(canonicalIp);

const cidr = z.string().refine(
  (v) => {
    const [addr, bits, extra] = v.split('/');
    if (extra !== undefined || !addr) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return /^\d+$/.test(bits) && n >= 0 && n <= (family === 4 ? 32 : 128);
  },
  { message: 'not a network in CIDR form (e.g. 10.0.0.0/8)' },
);

/** Whether `value` parses as a URL with one of `schemes` ("redis:", with the colon). */
export function isUrlWith(value: string, schemes: readonly string[]): boolean {
  return URL.canParse(value) && schemes.includes(new URL(value).protocol);
}

/**
 * A Redis address as ioredis takes it: a redis:// or rediss:// URL, a Unix socket path, or
 * host[:port] (a bare port, an IPv6 literal in brackets). The value may hold a password, so
 * problems never quote it.
 */
export function isRedisAddress(value: string): boolean {
  if (value.includes('://')) return isUrlWith(value, ['redis:', 'rediss:']);
  return value.startsWith('/') || /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(value);
}

/**
 * A PostgreSQL connection string as pg takes it: a postgres:// (or postgresql://, socket://) URL,
 * or a socket directory with an optional database name ("/var/run/postgresql rookery").
 */
export function isPostgresAddress(value: string): boolean {
  if (value.includes('://')) return isUrlWith(value, ['postgres:', 'postgresql:', 'socket:']);
  return value.startsWith('/');
}

const port = z.number().int().min(0).max(65535);
const hostName = z.string().regex(/^[A-Za-z0-9.-]+$/, { message: 'not a host name' });

/** "host:port", "[v6]:port", "host" (port 25) or "mx" (look up the domain's MX). */
const routeTarget = z.string().refine((v) => v === 'mx' || /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(v), {
  message: 'not a route: use "mx", "host", or "host:port"',
});

const listener = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port,
  tls: z.enum(['none', 'starttls', 'implicit']).default('none'),
  /** Pause before the 220 greeting; a client that talks during it is refused. */
  greetingDelay: durationSchema.default(0),
});

const user = z
  .strictObject({
    username: z.string().min(1),
    password: z.string().min(1).optional(),
    passwordHash: z
      .string()
      .regex(/^scrypt\$/, { message: 'not an scrypt hash (generate one with `rookery hash-password`)' })
      .optional(),
    /** Required, with no default: an account that may send as anyone says so with "*". */
    allowedSenders: z.array(z.string().min(1), {
      error: (issue) => (issue.input === undefined ? 'required: the envelope senders this user may use (addresses, "*@domain", or "*" for any)' : undefined),
    }),
    /** The pool this user's mail sends from (else by sender domain, else "default"). */
    pool: dataName.optional(),
    /** Further pools this user may choose per message with the X-Rookery-Pool header. */
    pools: z.array(dataName).optional(),
    /** The tenant this user sends for (tenants:); required once tenants are configured. */
    tenant: apiNameSchema.optional(),
  })
  .refine((u) => (u.password === undefined) !== (u.passwordHash === undefined), {
    message: 'give exactly one of password or passwordHash',
  });

export const configSchema = z.strictObject({
  hostname: hostName.default(() => osHostname()),
  dataDir: z.string().default('./data'),
  storage: z
    .strictObject({
      driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
      path: z.string().default('./data/rookery.db'),
      url: z.string().optional(),
      /** How long finished messages (every recipient delivered or bounced) and their events are kept. */
      retention: durationSchema.default(7 * 86_400_000),
      /**
       * How long the body of a finished message is kept, when shorter than `retention`: after it
       * only the envelope, recipient rows and events remain (keep as little personal data as
       * needed). Absent: the body goes with the message.
       */
      bodyRetention: durationSchema.optional(),
    })
    .prefault({}),
  redis: z
    .strictObject({
      url: z.string().refine(isRedisAddress, { message: 'not a Redis address (redis://host:6379, rediss://..., host:port or a socket path)' }),
      /** Prefix of every key Rookery writes, so several deployments can share one Redis. */
      keyPrefix: z.string().min(1).default('rookery:'),
    })
    .optional(),
  smtp: z
    .strictObject({
      listeners: z.array(listener).default([{ host: '127.0.0.1', port: 2525, tls: 'none', greetingDelay: 0 }]),
      tls: z.strictObject({ key: z.string(), cert: z.string() }).optional(),
      trustedNetworks: z.array(cidr).default([]),
      users: z.array(user).default([]),
      maxMessageBytes: z.number().int().positive().default(26_214_400),
      maxRecipients: z.number().int().positive().default(100),
      maxCommandBytes: z.number().int().min(512).default(4096),
      maxConnectionsPerClient: z.number().int().positive().default(50),
      maxConnections: z.number().int().positive().default(1000),
      sessionTimeout: positiveDurationSchema.default(600_000),
      idleTimeout: durationSchema.default(60_000),
      /** From each reply until the next command line is complete. */
      commandTimeout: positiveDurationSchema.default(60_000),
      /** DATA must arrive at this many bytes per second on average, after commandTimeout of slack. */
      minDataRate: z.number().int().positive().default(1024),
      /** Share of maxConnections that clients outside trustedNetworks cannot hold before they authenticate. */
      reservedConnectionShare: z.number().min(0).max(1).default(0.2),
      /** Bytes of messages being received (until committed) held at once, over all sessions. */
      maxBufferedBytes: z.number().int().positive().default(268_435_456),
      authFailures: z
        .strictObject({ max: z.number().int().positive().default(5), window: positiveDurationSchema.default(900_000) })
        .prefault({}),
    })
    // Below it, a message within the size limit would be refused for now (452) forever, even alone.
    .refine((smtp) => smtp.maxBufferedBytes >= smtp.maxMessageBytes, {
      message: 'less than maxMessageBytes: a message of the largest size accepted could never be received',
      path: ['maxBufferedBytes'],
    })
    .prefault({}),
  api: z
    .strictObject({
      listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: port.default(8025) }).prefault({}),
      /** Bearer tokens for the /v1 routes, stored as hashes; none means every /v1 request is refused. */
      tokens: apiTokensSchema,
      authFailures: apiAuthFailuresSchema,
    })
    .prefault({}),
  /** The control API's audit log (GET /v1/audit): how long its entries are kept. */
  audit: z.strictObject({ retention: positiveDurationSchema.default(365 * 86_400_000) }).prefault({}),
  delivery: z
    .strictObject({
      routes: z.record(z.string(), routeTarget).default({ '*': 'mx' }),
      maxAge: durationSchema.default(5 * 86_400_000),
      /** TCP port for next hops found by MX lookup (25 on the internet; tests point it at a sink). */
      mxPort: port.default(25),
      concurrency: z.number().int().positive().default(200),
      idleConnectionTimeout: durationSchema.default(5_000),
      retry: z
        .strictObject({
          initial: durationSchema.default(60_000),
          max: durationSchema.default(4 * 3_600_000),
          multiplier: z.number().min(1).default(2),
          jitter: z.number().min(0).max(1).default(0.2),
        })
        .prefault({}),
      timeouts: z
        .strictObject({
          connect: durationSchema.default(30_000),
          greeting: durationSchema.default(300_000),
          command: durationSchema.default(300_000),
          dataDone: durationSchema.default(600_000),
        })
        .prefault({}),
      shutdownTimeout: durationSchema.default(25_000),
      /** How long a node's claim on a recipient lasts unless renewed (every third of it): a dead node's mail waits this long. */
      lease: durationSchema.refine((ms) => ms >= 3_000, { message: 'at least 3s (a lease is renewed every third of it)' }).default(60_000),
      dsn: z.strictObject({ enabled: z.boolean().default(true), from: z.string().optional() }).prefault({}),
      /**
       * A site whose connections fail from every egress IP is held: probed once per interval
       * (doubling up to maxInterval), its mail deferred. A hold lasts an hour and is reviewed
       * halfway through, so a path is probed at least once per half hour.
       */
      deadSite: z
        .strictObject({
          interval: positiveDurationSchema.default(60_000),
          maxInterval: positiveDurationSchema.refine((ms) => ms <= 30 * 60_000, { message: 'at most 30m (a held site is reviewed every half hour)' }).default(600_000),
        })
        .refine((d) => d.maxInterval >= d.interval, { message: 'maxInterval is shorter than interval', path: ['maxInterval'] })
        .prefault({}),
      /** The TLS every recipient domain is held to, unless tlsPolicies or its MTA-STS policy says otherwise (outbound-tls-schema.ts). */
      tls: tlsModeSchema.default('opportunistic'),
      /** Recipient domain patterns (as routes: "domain", ".parent.domain", "*") -> TLS mode. */
      tlsPolicies: tlsPoliciesSchema,
      mtaSts: mtaStsConfigSchema,
      tlsReports: tlsReportsConfigSchema,
    })
    .prefault({}),
  ips: z
    .array(
      z.strictObject({
        address: egressAddress,
        hostname: hostName.optional(),
        pool: dataName.default('default'),
        /** Share of the pool's traffic; 0 takes the IP out of rotation. */
        weight: z.number().int().min(0).max(10_000).default(100),
        warmup: ipWarmupSchema.optional(),
      }),
    )
    .default([]),
  /** The customers this platform sends for: sender domains, pools, rate and daily quota (tenant-schema.ts). */
  tenants: tenantsSchema,
  /** Pool name -> options. A pool exists once an IP names it; here it gains sender domains. */
  pools: z.record(dataName, z.strictObject({ senders: z.array(z.string().regex(/^(\*\.)?[A-Za-z0-9.-]+$/, { message: 'not a domain or *.domain' })).default([]) })).default({}),
  warmup: warmupConfigSchema,
  providers: providersConfigSchema,
  shaping: shapingConfigSchema,
  reputation: reputationConfigSchema,
  /** The DNS blocklists every egress IP is looked up in, and what a listing does (blocklist-schema.ts). */
  blocklists: blocklistsConfigSchema,
  /** Operator reaction rules, tried before config/reaction-rules.yaml. */
  reactionRules: reactionRulesConfigSchema,
  /** Operator bounce rules, tried before config/bounce-rules.yaml. */
  bounceRules: bounceRulesConfigSchema,
  /** The suppression list: the action on a suppressed recipient, operator rules tried before config/suppression-rules.yaml. */
  suppression: suppressionConfigSchema,
  /** DKIM signing keys per sender domain, a fallback signing domain, optional x= expiry. */
  dkim: dkimConfigSchema,
  /** VERP return paths per sender domain, so bounces can be tied to their recipient. */
  returnPath: verpConfigSchema,
  /** One-click unsubscribe links in accepted mail, and the public listener that takes them (unsubscribe-schema.ts). */
  unsubscribe: unsubscribeConfigSchema,
  /** The listener where bounces, complaints and unsubscribe mail come back (inbound-schema.ts). */
  inbound: inboundConfigSchema,
  /** Signed POSTs of events to tenants' endpoints: the dispatcher's limits and the SSRF rule (webhooks-schema.ts). */
  webhooks: webhooksConfigSchema,
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config['smtp']['listeners'][number];
export type UserConfig = Config['smtp']['users'][number];
export type EgressIpConfig = Config['ips'][number];
