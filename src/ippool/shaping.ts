import { z } from 'zod';
import type { ProviderName } from './contracts.ts';
import { namedRecord } from './warmup.ts';

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

const RATE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** Parses "100/s", "30/m", "1000/h", "5000/d" to a number per second; null if not a rate above zero. */
export function parseRate(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|m|h|d)\s*$/.exec(text);
  if (!match) return null;
  const perSecond = Number(match[1]) / RATE_UNITS[match[2]!]!;
  return perSecond > 0 ? perSecond : null;
}

/** A rate as written in config ("100/s"), parsed to a number per second. */
export const rateSchema = z.string().transform((value, ctx) => {
  const ratePerSecond = parseRate(value);
  if (ratePerSecond === null) {
    ctx.addIssue({ code: 'custom', message: `not a rate (use e.g. 100/s, 30/m, 1000/h): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ratePerSecond;
});

/** How many may go at once after a quiet spell; without it, one second's worth (at least 1). */
const burst = z.number().int().positive();

const limitFields = {
  maxConnections: z.number().int().positive(),
  maxMessagesPerConnection: z.number().int().positive(),
  messageRate: rateSchema,
  messageBurst: burst,
  connectionRate: rateSchema,
  connectionBurst: burst,
};

const partialLimits = z.strictObject({
  maxConnections: limitFields.maxConnections.optional(),
  maxMessagesPerConnection: limitFields.maxMessagesPerConnection.optional(),
  messageRate: limitFields.messageRate.optional(),
  messageBurst: limitFields.messageBurst.optional(),
  connectionRate: limitFields.connectionRate.optional(),
  connectionBurst: limitFields.connectionBurst.optional(),
});

/** config/shaping.yaml: a complete default (bursts optional), and per-provider changes to it. */
export const shapingFileSchema = z.strictObject({
  default: z.strictObject({
    ...limitFields,
    messageBurst: limitFields.messageBurst.optional(),
    connectionBurst: limitFields.connectionBurst.optional(),
  }),
  providers: namedRecord(partialLimits).default({}),
});

/**
 * The config's `shaping:` key, merged over config/shaping.yaml: each field given replaces that
 * field, in `default` or in a provider's entry. A provider's entry, from either place, wins
 * over `default`. Rates come out per second.
 */
export const shapingConfigSchema = z
  .strictObject({
    default: partialLimits.default({}),
    providers: namedRecord(partialLimits).default({}),
  })
  .prefault({});

export type ShapingFile = z.output<typeof shapingFileSchema>;
export type ShapingConfigInput = z.input<typeof shapingConfigSchema>;
export type ShapingConfig = z.output<typeof shapingConfigSchema>;

export interface ShapingTable {
  /** The limits for a provider; a provider without an entry gets the default. */
  shapingFor(provider: ProviderName): Shaping;
}

/** Builds the table from the file's values and the operator's, resolved once, up front. */
export function createShapingTable(file: ShapingFile, overrides: ShapingConfig = { default: {}, providers: {} }): ShapingTable {
  const defaults = { ...file.default, ...defined(overrides.default) };
  const fallback = resolve(defaults);
  const byProvider = new Map<ProviderName, Shaping>();
  for (const provider of new Set([...Object.keys(file.providers), ...Object.keys(overrides.providers)])) {
    byProvider.set(provider, resolve({ ...defaults, ...defined(file.providers[provider]), ...defined(overrides.providers[provider]) }));
  }
  return Object.freeze({
    shapingFor: (provider: ProviderName) => byProvider.get(provider) ?? fallback,
  });
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
