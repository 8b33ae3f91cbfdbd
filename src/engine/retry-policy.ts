import type { Config } from '../config/schema.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';

/** Pure retry decisions: when to try again, and when a message has been in the queue too long. */

export type RetryConfig = Config['delivery']['retry'];

/**
 * Delay before the next attempt after `attempts` attempts (1 after the first): `initial`
 * multiplied by `multiplier` for each further attempt, capped at `max`, then spread by
 * +/- `jitter` (a fraction) so retries of a burst do not arrive together.
 */
export function nextAttemptDelay(attempts: number, retry: RetryConfig, random: () => number): number {
  const steps = Math.max(0, Math.floor(attempts) - 1);
  const base = Math.min(retry.max, retry.initial * retry.multiplier ** steps);
  const spread = retry.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base * (1 + spread)));
}

export interface RetryDecisionInput {
  outcome: DeliveryOutcome;
  /** Attempts made, including this one (a throttled wait is not an attempt). */
  attempts: number;
  /** When the message was accepted. */
  createdAt: number;
  now: number;
  /** delivery.maxAge: how long a message may stay in the queue. */
  maxAge: number;
  retry: RetryConfig;
  random: () => number;
  /** For a throttled outcome: when the throttle lifts, if the throttle knows. */
  throttledUntil?: number;
  /**
   * For a throttled outcome: the wait is for an operator's pause (no IP of the pool may send,
   * and the first to come back is a paused one). Mail does not run out of time while an operator holds it, as paused domains, pools
   * and tenants are never claimed at all: the first try after the pause decides.
   */
  paused?: boolean;
}

export interface RetryDecision {
  newState: 'queued' | 'delivered' | 'bounced';
  /** Set when newState is 'queued'. */
  nextAttemptAt?: number;
  /** True when the recipient bounces because it ran out of time (use expiredOutcome for the record). */
  expired: boolean;
}

export function decide(input: RetryDecisionInput): RetryDecision {
  const { outcome, attempts, createdAt, now, maxAge, retry, random } = input;
  const deadline = createdAt + maxAge;
  switch (outcome.disposition) {
    case 'delivered':
      return { newState: 'delivered', expired: false };
    case 'permanent':
      return { newState: 'bounced', expired: false };
    case 'throttled': {
      // A throttle is our own wait, not a failure: it never bounces a message before maxAge.
      const at = input.throttledUntil ?? now + nextAttemptDelay(1, retry, random);
      if (input.paused) return { newState: 'queued', nextAttemptAt: Math.max(at, now), expired: false };
      if (now >= deadline) return { newState: 'bounced', expired: true };
      return { newState: 'queued', nextAttemptAt: Math.min(Math.max(at, now), deadline), expired: false };
    }
    case 'transient': {
      // Retried until maxAge has passed, the last time at the deadline itself.
      if (now >= deadline) return { newState: 'bounced', expired: true };
      const at = now + nextAttemptDelay(attempts, retry, random);
      return { newState: 'queued', nextAttemptAt: Math.min(at, deadline), expired: false };
    }
  }
}

/**
 * The outcome recorded (and reported in the DSN) when a recipient runs out of time: permanent,
 * status 5.4.7 "delivery time expired", bounce class 'expired', keeping the last remote reply
 * (code, text, host) so the sender learns why the attempts failed.
 */
export function expiredOutcome(last: DeliveryOutcome | null): DeliveryOutcome {
  return {
    disposition: 'permanent',
    code: last?.code ?? null,
    enhanced: '5.4.7',
    response: last?.response ? last.response : 'message expired in the queue before it could be delivered',
    stage: last?.stage ?? 'queue',
    bounceClass: 'expired',
    remoteHost: last?.remoteHost ?? null,
    egressIp: last?.egressIp ?? null,
  };
}
