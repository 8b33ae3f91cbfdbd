import { z } from 'zod';
import { positiveDurationSchema } from './duration.ts';

/**
 * The egress pool's settings, as written in the config (`warmup:`, `providers:`, `shaping:`,
 * `reputation:`, `ips[].warmup`) and in the data files of config/ (warmup-plans.yaml,
 * providers.yaml, shaping.yaml). src/ippool turns the parsed values into its plans, provider
 * catalog and shaping table.
 */

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const NAME_MESSAGE = 'not a name (letters, digits, "-" and "_", starting with a letter)';

/** A plan, pool or provider name as written in config: it becomes part of counter keys and metric labels. */
export const dataName = z.string().regex(NAME, { message: NAME_MESSAGE });

/**
 * A mapping from plan or provider names to `value`. Names are checked by a refinement rather
 * than a key schema, so a bad name is reported at its own path with a message that says why.
 */
export function namedRecord<T extends z.ZodType>(value: T) {
  return z.record(z.string(), value).superRefine((record, ctx) => {
    for (const key of Object.keys(record)) {
      if (!NAME.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: NAME_MESSAGE });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Warm-up (src/ippool/warmup.ts)
// ---------------------------------------------------------------------------------------------

/** A plan: the daily cap of day 0, day 1, ... */
export const warmupPlanSchema = z
  .array(z.number().int().positive())
  .min(1, { message: 'a plan needs at least one day' });

/** The plans of config/warmup-plans.yaml, and of `warmup.plans` in the config. */
export const warmupPlansSchema = namedRecord(warmupPlanSchema);

/** The config's `warmup:` key; `idleRestart` comes out in milliseconds. */
export const warmupConfigSchema = z
  .strictObject({
    /** Hours a day the daily cap is spread over: hourly cap = ceil(daily cap / activeHours). */
    activeHours: z.number().int().min(1).max(24).default(16),
    /** An IP idle for longer than this starts its plan again. */
    idleRestart: positiveDurationSchema.default(30 * 86_400_000),
    /** Operator plans, added to config/warmup-plans.yaml or replacing a plan of the same name. */
    plans: warmupPlansSchema.default({}),
  })
  .prefault({});

export type WarmupConfig = z.output<typeof warmupConfigSchema>;

/** Parses "YYYY-MM-DD" to 00:00 UTC of that date in ms; null for anything else, including 2026-02-30. */
export function parseDate(text: string): number | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return null;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const ms = Date.UTC(year, month - 1, day);
  const date = new Date(ms);
  // Date.UTC rolls 2026-02-30 over to March; a real date comes back unchanged.
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  return ms;
}

/**
 * `ips[].warmup`: `{ plan, start: YYYY-MM-DD }`. `start` comes out as 00:00 UTC of that date in
 * ms, the form src/ippool/warmup.ts takes. Whether the plan exists is checked against the loaded
 * plans (see unknownPlans in src/ippool/pool-data.ts), since operators add their own.
 */
export const ipWarmupSchema = z.strictObject({
  plan: dataName,
  start: z.string().transform((value, ctx) => {
    const ms = parseDate(value);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `not a date (use YYYY-MM-DD): ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  }),
});

// ---------------------------------------------------------------------------------------------
// Destination providers (src/ippool/providers.ts)
// ---------------------------------------------------------------------------------------------

/**
 * An MX host pattern: "aspmx.l.google.com" (that host), "*.google.com" (any subdomain, one label
 * or more, not google.com itself), "mx*.mail.me.com" (a "*" inside a label matches any letters
 * of that one label). Case does not matter; the last label is always literal.
 */
export function isMxPattern(pattern: string): boolean {
  const labels = pattern.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length < 2) return false;
  return labels.every((label, i) => {
    if (i === 0 && label === '*') return true;
    if (i === labels.length - 1) return /^[a-z0-9-]+$/.test(label);
    return /^[a-z0-9-]*\*?[a-z0-9-]*$/.test(label) && label !== '*' && label !== '';
  });
}

const mxPattern = z.string().refine(isMxPattern, {
  message: 'not an MX host pattern (use e.g. mx.example.com, *.example.com, mx*.example.com)',
});

/** Multiplies the warm-up plan's caps for a provider (1 = the plan as written). */
const warmupScale = z.number().positive().max(100);

/** config/providers.yaml: every group with its patterns and scale; `other` has no patterns. */
export const providersFileSchema = namedRecord(z.strictObject({ mx: z.array(mxPattern).default([]), warmupScale }));

/**
 * The config's `providers:` key: a group named like one in config/providers.yaml changes only
 * the fields given; a new name adds a group (it needs `mx`; its scale defaults to 1).
 */
export const providersConfigSchema = namedRecord(
  z.strictObject({ mx: z.array(mxPattern).min(1).optional(), warmupScale: warmupScale.optional() }),
).default({});

export type ProvidersFile = z.output<typeof providersFileSchema>;
export type ProvidersConfig = z.output<typeof providersConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Traffic shaping (src/ippool/shaping.ts)
// ---------------------------------------------------------------------------------------------

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
export type ShapingConfig = z.output<typeof shapingConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Reputation (src/ippool/reputation.ts)
// ---------------------------------------------------------------------------------------------

/** The config's `reputation:` key; `{}` (or absent) gives the defaults. */
export const reputationConfigSchema = z
  .strictObject({
    /** The sliding window the score is computed over. */
    window: positiveDurationSchema.default(3_600_000),
    /** Fewer outcomes than this in the window: no score (no judgement). */
    minSamples: z.number().int().positive().default(20),
    /** A score below this lowers the IP's weight for that provider (src/ippool/weight-adjustment.ts). */
    floor: z.number().min(0).max(1).default(0.7),
  })
  .prefault({});

export type ReputationConfig = z.output<typeof reputationConfigSchema>;
