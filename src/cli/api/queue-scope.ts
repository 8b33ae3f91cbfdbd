import { UsageError, type ApiOption, type OptionValues } from './api-command.ts';

/**
 * The scope of a queue operation (pause, resume, retry, bounce) as options: exactly one of
 * --domain, --pool and --ip, sent as the API's `scope` object (src/control-api/v1/queue-scope.ts)
 * and named in the answer's text the way the daemon's log and audit name it.
 */

export type ScopeJson = { domain?: string; pool?: string; egressIp?: string };

const ONE_OF = 'give one of --domain, --pool, --ip';

export const SCOPE_OPTIONS: Readonly<Record<string, ApiOption>> = {
  domain: { value: 'DOMAIN', help: `the recipients of this destination domain; ${ONE_OF}` },
  pool: { value: 'POOL', help: 'the messages of this egress pool' },
  ip: { value: 'ADDRESS', help: 'this egress IP, of any node' },
};

/** The option each field of the API's scope comes from. */
const FIELDS = { domain: 'domain', pool: 'pool', ip: 'egressIp' } as const;

/** The scope the options name; a usage error unless exactly one is given. */
export function scopeOf(values: OptionValues): ScopeJson {
  const given = Object.entries(FIELDS).flatMap(([option, field]) => (typeof values[option] === 'string' ? [[field, values[option]] as const] : []));
  if (given.length !== 1) throw new UsageError(given.length === 0 ? ONE_OF : `${ONE_OF}, not ${given.length}`);
  return Object.fromEntries(given);
}

/** `domain gmail.com`, `pool bulk`, `egress IP 203.0.113.7`. */
export function scopeText(scope: ScopeJson): string {
  if (scope.domain !== undefined) return `domain ${scope.domain}`;
  if (scope.pool !== undefined) return `pool ${scope.pool}`;
  return `egress IP ${scope.egressIp ?? '?'}`;
}
