/**
 * Warm-up: a new IP sends a little on its first day and more each day after, following a plan
 * (config/warmup-plans.yaml). Every function here is pure; the time comes in as an argument so
 * 30 simulated days run in a unit test.
 *
 * Days are UTC calendar days: day 0 is the plan's start date from 00:00 UTC, whatever the hour
 * the first message leaves. A plan is the daily cap of each day; after its last day the IP is
 * warm and has no cap. The plans' schema is in src/config/pool-schemas.ts.
 */

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

/** "YYYY-MM-DD" of the UTC day that contains `ms`, for logs and the control API. */
export function formatDate(ms: number): string {
  return new Date(utcDayStart(ms)).toISOString().slice(0, 10);
}

export function utcDayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** UTC calendar days from the start date to `now`: 0 on the start date, negative before it. */
export function dayIndex(start: number, now: number): number {
  return Math.round((utcDayStart(now) - utcDayStart(start)) / DAY_MS);
}

/** A fixed counting window: usage counters are keyed by `start`, and kept for `ms`. */
export interface TimeWindow {
  start: number;
  ms: number;
}

/** The UTC calendar day that contains `now`. */
export function dayWindow(now: number): TimeWindow {
  return { start: utcDayStart(now), ms: DAY_MS };
}

/** The UTC clock hour that contains `now`. */
export function hourWindow(now: number): TimeWindow {
  return { start: Math.floor(now / HOUR_MS) * HOUR_MS, ms: HOUR_MS };
}

export interface WarmupCaps {
  /**
   * pending: the start date is still ahead, the IP sends nothing yet (its traffic goes to other
   * IPs); warming: capped by the plan; warm: past the plan's last day, no cap.
   */
  phase: 'pending' | 'warming' | 'warm';
  /** Day of the plan (negative while pending); null once warm. */
  day: number | null;
  /** Most messages this UTC day; null = no cap. */
  daily: number | null;
  /** Most messages this UTC hour; null = no cap. */
  hourly: number | null;
}

export interface WarmupCapsInput {
  plan: readonly number[];
  /** 00:00 UTC of the plan's day 0, in ms (see effectiveStart for restarts). */
  start: number;
  now: number;
  /** Hours the daily cap is spread over (1..24). */
  activeHours: number;
  /** The destination provider's warmupScale: multiplies the plan's caps. */
  scale: number;
}

/**
 * The caps of one (IP, provider) at `now`. Scaled caps are rounded down but stay at least 1, so
 * a small scale slows a provider's ramp without shutting it out. The hourly cap is the daily cap
 * spread over `activeHours`, so a warming IP never spends its whole day in the first minute.
 */
export function warmupCaps({ plan, start, now, activeHours, scale }: WarmupCapsInput): WarmupCaps {
  if (!(scale > 0)) throw new RangeError(`warm-up scale must be above 0, got ${scale}`);
  if (!Number.isInteger(activeHours) || activeHours < 1 || activeHours > 24) {
    throw new RangeError(`activeHours must be a whole number from 1 to 24, got ${activeHours}`);
  }
  const day = dayIndex(start, now);
  if (day < 0) return { phase: 'pending', day, daily: 0, hourly: 0 };
  const planned = plan[day];
  if (planned === undefined) return { phase: 'warm', day: null, daily: null, hourly: null };
  // Rounded to a millionth first: 175000 * 0.7 is 122499.99999999999 in floating point.
  const daily = Math.max(1, Math.floor(Math.round(planned * scale * 1e6) / 1e6));
  return { phase: 'warming', day, daily, hourly: Math.ceil(daily / activeHours) };
}

export interface EffectiveStartInput {
  /** `ips[].warmup.start` (00:00 UTC, ms). */
  configuredStart: number;
  /** When the IP last sent a message, to any provider; null if never. */
  lastSentAt: number | null;
  /** The start of a restart persisted earlier; null if the plan never restarted. */
  restartedAt: number | null;
  now: number;
  idleRestartMs: number;
}

export interface EffectiveStart {
  /** 00:00 UTC of the day-0 to use now. */
  start: number;
  /** True when this call restarted the plan: the caller persists `start` as the new restartedAt. */
  restarted: boolean;
}

/**
 * The day 0 an IP's plan counts from. Providers forget an IP that stops sending, so an IP idle
 * for longer than `idleRestartMs` warms up again from today.
 *
 * The current run of the plan starts at the later of the configured start and the last restart
 * (an operator who sets a new start date after a restart starts a fresh plan). The IP counts as
 * active at that start and whenever it sends, so a plan that ran for a month without sending
 * anything starts over too, and a fresh restart is not restarted again before it had a chance
 * to send.
 */
export function effectiveStart({ configuredStart, lastSentAt, restartedAt, now, idleRestartMs }: EffectiveStartInput): EffectiveStart {
  const current = restartedAt !== null && restartedAt > configuredStart ? restartedAt : configuredStart;
  const lastActive = Math.max(current, lastSentAt ?? current);
  if (now - lastActive > idleRestartMs) return { start: utcDayStart(now), restarted: true };
  return { start: current, restarted: false };
}
