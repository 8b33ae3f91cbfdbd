import type { PathDown } from './egress-path.ts';
import type { Gate } from './eligibility.ts';
import type { MemberWeight } from './member-settings.ts';
import { restrictionOf, type RestrictionSnapshot, type WindowUsage } from './pool-snapshot.ts';
import { describeScope } from './restriction-scope.ts';
import type { WeightOverride } from './restrictions.ts';
import type { Taken } from './token-buckets.ts';
import type { WarmupReading } from './warmup-reservation.ts';
import { formatDate, type WarmupCaps } from './warmup.ts';

/**
 * What one gate of selection (eligibility.ts) found for an egress IP, in words an operator can
 * act on and in fields a script can read. Pure: the readings come in, nothing is asked.
 */

type GateOf<K extends Gate['kind']> = Extract<Gate, { kind: K }>;

/** A gate and what reading it found (the gate's kind repeated, so a switch narrows both). */
export type GateReading =
  | { kind: 'pause'; gate: GateOf<'pause'> }
  | { kind: 'suspension'; gate: GateOf<'suspension'> }
  | { kind: 'throttle'; gate: GateOf<'throttle'>; taken: Taken }
  | { kind: 'recovery'; gate: GateOf<'recovery'>; taken: Taken }
  | { kind: 'rate'; gate: GateOf<'rate'>; path: Taken & { down: PathDown | null } }
  | { kind: 'warmup'; gate: GateOf<'warmup'>; warmup: WarmupReading };

export interface IpCheck {
  check: 'weight' | 'paused' | 'suspended' | 'throttled' | 'recovering' | 'rate' | 'unreachable' | 'warmup';
  /** Whether it lets a message through now. */
  ok: boolean;
  detail: string;
  /** When a check that refuses lets a message through again; null when it passes, or nothing says when. */
  retryAt: number | null;
  /** The suspension or throttle behind a `suspended` or `throttled` check; null for the others. */
  restriction: RestrictionSnapshot | null;
  /** The plan, its caps and counts behind a `warmup` check; null for the others. */
  warmup: WarmupCheck | null;
}

export interface WarmupCheck {
  plan: string;
  /** The day 0 the plan counts from now. */
  start: number;
  phase: WarmupCaps['phase'];
  day: number | null;
  restartsOnNextSend: boolean;
  /** null once the IP is warm. */
  hourly: WindowUsage | null;
  daily: WindowUsage | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The weight check: 0 keeps an IP out of rotation, whatever else allows. */
export function describeWeight(weight: MemberWeight & { configured: number }, override: WeightOverride | null): IpCheck {
  const none = { retryAt: null, restriction: null, warmup: null };
  const set = override ? `set by ${override.by} (${override.reason}) in place of the configured ${weight.configured}` : 'configured (ips[].weight)';
  if (weight.weight === 0) return { check: 'weight', ok: false, detail: `weight 0, ${set}: out of rotation`, ...none };
  const lowered = weight.reason ? `; lowered: ${weight.reason}` : '';
  return { check: 'weight', ok: true, detail: `weight ${weight.base}, ${set}${lowered}`, ...none };
}

/** A gate's reading at `now`, described. */
export function describeCheck(reading: GateReading, now: number): IpCheck {
  const none = { restriction: null, warmup: null };
  switch (reading.kind) {
    case 'pause': {
      const { until } = reading.gate;
      return { check: 'paused', ok: false, detail: `paused by an operator ${until === null ? 'until resumed' : `until ${iso(until)}`} (GET /v1/queue/pauses)`, retryAt: until, ...none };
    }
    case 'suspension': {
      const { restriction, scope } = reading.gate;
      const who = restriction.by ? `by ${restriction.by}` : `by rule ${restriction.rule}`;
      return {
        check: 'suspended',
        ok: false,
        detail: `suspended for ${describeScope(scope)} until ${iso(restriction.until)} ${who}: ${restriction.reason}`,
        retryAt: restriction.until,
        restriction: restrictionOf(restriction, scope),
        warmup: null,
      };
    }
    case 'throttle': {
      const { restriction, scope } = reading.gate;
      const { taken } = reading;
      const head = `throttled to ${restriction.ratePerHour ?? 0}/h for ${describeScope(scope)} until ${iso(restriction.until)} by rule ${restriction.rule} (${restriction.reason})`;
      return { check: 'throttled', ...spend(taken, now, head), restriction: restrictionOf(restriction, scope), warmup: null };
    }
    case 'recovery': {
      const { recovery, scope, limit } = reading.gate;
      const { taken } = reading;
      const after = recovery.action.kind === 'throttle' ? 'a throttle' : 'a suspension';
      const head = `coming back after ${after} for ${describeScope(scope)} ended at ${iso(recovery.endedAt)}: ${rate(limit.ratePerSecond)} now, rising to the normal rate`;
      return { check: 'recovering', ...spend(taken, now, head), ...none };
    }
    case 'rate': {
      const { path } = reading;
      if (path.down) {
        const detail = `cannot reach the site since ${iso(path.down.since)} (${path.down.reason}); next probe at ${iso(path.down.probeAt)}`;
        return { check: 'unreachable', ok: false, detail, retryAt: path.down.probeAt, ...none };
      }
      const head = `message rate ${rate(reading.gate.limit.ratePerSecond)} per IP and site (shaping)`;
      return { check: 'rate', ...spend(path, now, head), ...none };
    }
    case 'warmup':
      return describeWarmup(reading.gate.warmup.plan, reading.warmup);
  }
}

function describeWarmup(plan: string, reading: WarmupReading): IpCheck {
  const { caps, start, restartsOnNextSend, windows } = reading;
  const usage = (name: 'hour' | 'day'): WindowUsage | null => {
    const w = windows.find((x) => x.name === name);
    return w ? { cap: w.cap, used: w.used, windowStart: w.window.start, windowEnd: w.window.start + w.window.ms } : null;
  };
  const warmup: WarmupCheck = { plan, start, phase: caps.phase, day: caps.day, restartsOnNextSend, hourly: usage('hour'), daily: usage('day') };
  const idle = restartsOnNextSend ? ' (idle longer than warmup.idleRestart: the next message restarts the plan from today)' : '';
  const base = { check: 'warmup' as const, restriction: null, warmup };
  if (caps.phase === 'warm') return { ...base, ok: true, detail: `warm-up plan ${plan} is over: no cap`, retryAt: null };
  if (caps.phase === 'pending') return { ...base, ok: false, detail: `warm-up plan ${plan} starts on ${formatDate(start)}: nothing before`, retryAt: start };
  const full = windows.filter((w) => w.used >= w.cap);
  const counts = windows.map((w) => `${w.used} of ${w.cap} this ${w.name}`).join(', ');
  const head = `warm-up plan ${plan}, day ${caps.day}: ${counts}${idle}`;
  if (full.length === 0) return { ...base, ok: true, detail: head, retryAt: null };
  const retryAt = Math.max(...full.map((w) => w.window.start + w.window.ms));
  return { ...base, ok: false, detail: `${head}: cap reached until ${iso(retryAt)}`, retryAt };
}

/** A bucket's answer: a message may go now, or when the next one may. */
function spend(taken: Taken, now: number, head: string): { ok: boolean; detail: string; retryAt: number | null } {
  if (taken.allowed) return { ok: true, detail: `${head}: a message may go now`, retryAt: null };
  const retryAt = now + taken.retryAfterMs;
  return { ok: false, detail: `${head}: the next message may go at ${iso(retryAt)}`, retryAt };
}

/** A rate as an operator writes it: per second from one a second up, else per hour. */
function rate(perSecond: number): string {
  if (perSecond >= 1) return `${Number(perSecond.toFixed(2))}/s`;
  return `${Number((perSecond * 3600).toFixed(2))}/h`;
}
