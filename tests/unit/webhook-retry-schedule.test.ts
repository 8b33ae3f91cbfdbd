import { describe, expect, it } from 'vitest';
import { FIRST_RETRY_MS, MAX_RETRY_MS, nextWebhookAttempt } from '../../src/webhooks/retry-schedule.ts';

describe('webhook retry schedule', () => {
  const T0 = 1_700_000_000_000;
  const until = T0 + 3 * 86_400_000;

  it('doubles from 10 s to at most 6 h, less up to a fifth of jitter', () => {
    expect(nextWebhookAttempt(1, T0, until, () => 0)).toBe(T0 + FIRST_RETRY_MS);
    expect(nextWebhookAttempt(2, T0, until, () => 0)).toBe(T0 + 2 * FIRST_RETRY_MS);
    expect(nextWebhookAttempt(5, T0, until, () => 0)).toBe(T0 + 16 * FIRST_RETRY_MS);
    expect(nextWebhookAttempt(30, T0, until, () => 0)).toBe(T0 + MAX_RETRY_MS);
    expect(nextWebhookAttempt(1, T0, until, () => 0.999_999)).toBe(T0 + 8_000);
    expect(nextWebhookAttempt(30, T0, until, () => 0.5)).toBe(T0 + MAX_RETRY_MS * 0.9);
  });

  it('tries last at the deadline, and gives up once it has passed', () => {
    expect(nextWebhookAttempt(30, until - 1000, until, () => 0)).toBe(until);
    expect(nextWebhookAttempt(30, until, until, () => 0)).toBeNull();
    expect(nextWebhookAttempt(1, until + 1, until, () => 0)).toBeNull();
  });
});
