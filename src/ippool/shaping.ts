import type { ShapingConfig, ShapingFile } from '../config/pool-schemas.ts';
import type { ProviderName } from './contracts.ts';

/**
 * Traffic shaping per (egress IP x destination site): how many connections, how many messages
 * on one connection, and how fast messages and new connections may go. Defaults and per-provider
 * values are data (config/shaping.yaml); the operator's `shaping:` is merged over them.
 */

/** A token bucket's limit, as RateLimiter.take (contracts.ts) wants it. */
export interface RateLimit {
  ratePerSecond: number;
  /** Most tokens the bucket holds: how many may go at once after a quiet spell. */
  burst: number;
}

export interface Shaping {
  maxConnections: number;
  maxMessagesPerConnection: number;
  messageRate: RateLimit;
  connectionRate: RateLimit;
}

/**
 * The limits of every provider, resolved once, up front, from the file's values and the
 * operator's. Plain data with one lookup, so two tables of the same limits compare equal.
 */
export class ShapingTable {
  /** What a provider without an entry gets. */
  readonly default: Shaping;
  readonly providers: ReadonlyMap<ProviderName, Shaping>;

  constructor(file: ShapingFile, overrides: ShapingConfig = { default: {}, providers: {} }) {
    const defaults = { ...file.default, ...defined(overrides.default) };
    this.default = resolve(defaults);
    const byProvider = new Map<ProviderName, Shaping>();
    for (const provider of new Set([...Object.keys(file.providers), ...Object.keys(overrides.providers)])) {
      byProvider.set(provider, resolve({ ...defaults, ...defined(file.providers[provider]), ...defined(overrides.providers[provider]) }));
    }
    this.providers = byProvider;
    Object.freeze(this);
  }

  /** The limits for a provider; a provider without an entry gets the default. */
  shapingFor(provider: ProviderName): Shaping {
    return this.providers.get(provider) ?? this.default;
  }
}

function resolve(values: ShapingFile['default']): Shaping {
  return Object.freeze({
    maxConnections: values.maxConnections,
    maxMessagesPerConnection: values.maxMessagesPerConnection,
    messageRate: bucket(values.messageRate, values.messageBurst),
    connectionRate: bucket(values.connectionRate, values.connectionBurst),
  });
}

/** A second's worth of tokens unless configured, and at least one, so a slow rate can still send. */
function bucket(ratePerSecond: number, burst: number | undefined): RateLimit {
  return Object.freeze({ ratePerSecond, burst: burst ?? Math.max(1, Math.floor(ratePerSecond)) });
}

/** The fields that are set: a missing optional field must not overwrite a value below it. */
function defined<T extends object>(values: T | undefined): Partial<T> {
  if (!values) return {};
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
