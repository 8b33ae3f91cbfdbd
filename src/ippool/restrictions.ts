import { z } from 'zod';
import type { ReactionAction } from './contracts.ts';

/**
 * The values of the pool state entries that restrict an IP, as JSON: written by encode, read
 * back (after a restart, or from another node) by decode, which checks their shape rather than
 * trusting whatever the backend holds.
 */

/** A restriction of an IP, for one provider or all, kept in pool state until it ends. */
export interface Restriction {
  action: 'suspend' | 'throttle';
  /** Messages per hour while throttled. */
  ratePerHour?: number;
  /** The reaction rule behind it (or 'egress-unavailable', or OPERATOR_RULE). */
  rule: string;
  /** Who set it: the API token's name, for an operator's suspension; absent for a reaction's. */
  by?: string;
  /** The remote reply (or local error) that triggered it, for operators. */
  reason: string;
  until: number;
}

/** The rule name of a suspension an operator set through the control API. */
export const OPERATOR_RULE = 'operator';

/** The weight an operator set for an IP in place of its configured one, until removed. */
export interface WeightOverride {
  weight: number;
  /** The API token's name. */
  by: string;
  reason: string;
  setAt: number;
}

/**
 * The warm-up plan an operator (re)started for an IP in place of its configured one
 * (POST /v1/ips/{address}/warmup), until removed: day 0 is the UTC day it was set.
 */
export interface WarmupOverride {
  plan: string;
  /** 00:00 UTC of day 0 (ms). */
  start: number;
  /** The API token's name. */
  by: string;
  reason: string;
  setAt: number;
}

/**
 * What a blocklist listing does to an IP (src/ippool/blocklist-watch.ts), kept in pool state
 * while the IP is listed and removed when it is delisted: a suspension or a lowered weight for
 * some providers ('*': every one). Renewed by each lookup, so it ends by itself (at `until`)
 * when nobody checks the IP any more.
 */
export interface BlocklistRestriction {
  /** The list's configured name. */
  list: string;
  action: 'suspend' | 'weight';
  /** What the weight is multiplied by; `weight` only. */
  factor?: number;
  /** The providers it applies to, or ['*'] for every one. */
  providers: string[];
  /** The listing in words: the list, its codes and its TXT reason. */
  reason: string;
  until: number;
}

/** After a restriction ends, the IP ramps back up from a reduced rate. */
export interface Recovery {
  action: ReactionAction;
  endedAt: number;
}

const time = z.number().int();

const restrictionSchema = z.object({
  action: z.enum(['suspend', 'throttle']),
  ratePerHour: z.number().nonnegative().optional(),
  rule: z.string(),
  by: z.string().optional(),
  reason: z.string(),
  until: time,
});

const blocklistRestrictionSchema = z.object({
  list: z.string().min(1),
  action: z.enum(['suspend', 'weight']),
  factor: z.number().gt(0).lt(1).optional(),
  providers: z.array(z.string().min(1)).min(1),
  reason: z.string(),
  until: time,
});

const weightOverrideSchema = z.object({
  weight: z.number().int().nonnegative(),
  by: z.string(),
  reason: z.string(),
  setAt: time,
});

const warmupOverrideSchema = z.object({
  plan: z.string().min(1),
  start: time,
  by: z.string(),
  reason: z.string(),
  setAt: time,
});

const recoverySchema = z.object({
  action: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('throttle'), ratePerHour: z.number().nonnegative() }),
    z.object({ kind: z.literal('suspend-provider') }),
    z.object({ kind: z.literal('suspend-ip') }),
    z.object({ kind: z.literal('bounce') }),
  ]),
  endedAt: time,
});

export function encodeRestriction(restriction: Restriction): string {
  return JSON.stringify(restriction);
}

export function encodeWeightOverride(override: WeightOverride): string {
  return JSON.stringify(override);
}

export function decodeWeightOverride(value: string): WeightOverride | null {
  return decode(weightOverrideSchema, value);
}

export function encodeWarmupOverride(override: WarmupOverride): string {
  return JSON.stringify(override);
}

export function decodeWarmupOverride(value: string): WarmupOverride | null {
  return decode(warmupOverrideSchema, value);
}

export function encodeBlocklistRestriction(restriction: BlocklistRestriction): string {
  return JSON.stringify(restriction);
}

export function decodeBlocklistRestriction(value: string): BlocklistRestriction | null {
  return decode(blocklistRestrictionSchema, value);
}

export function encodeRecovery(recovery: Recovery): string {
  return JSON.stringify(recovery);
}

/** The restriction a state value holds; null when it is not one. */
export function decodeRestriction(value: string): Restriction | null {
  return decode(restrictionSchema, value);
}

export function decodeRecovery(value: string): Recovery | null {
  return decode(recoverySchema, value);
}

/** A time (ms) stored as a decimal string; null when it is not one. */
export function decodeTime(value: string): number | null {
  const ms = Number(value);
  return value !== '' && Number.isSafeInteger(ms) ? ms : null;
}

function decode<T>(schema: z.ZodType<T>, value: string): T | null {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return null;
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : null;
}
