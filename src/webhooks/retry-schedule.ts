/**
 * When a failed delivery is tried again: exponential backoff from 10 seconds, doubling to at most
 * 6 hours, with up to a fifth of jitter (so the deliveries of an endpoint that was down do not all
 * come back at the same moment), and never after the delivery's retry deadline: the last attempt
 * is at the deadline. Null once the deadline has passed: the delivery has failed.
 */
export const FIRST_RETRY_MS = 10_000;
export const MAX_RETRY_MS = 6 * 3_600_000;
const JITTER = 0.2;

/** `attempts`: attempts made, this one included (1 after the first failure). `random` in [0, 1). */
export function nextWebhookAttempt(attempts: number, now: number, retryUntil: number, random: () => number = Math.random): number | null {
  if (now >= retryUntil) return null;
  const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1));
  const delay = Math.round(backoff * (1 - JITTER * random()));
  return Math.min(now + delay, retryUntil);
}
