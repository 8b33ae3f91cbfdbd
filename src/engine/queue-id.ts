import { randomUUID } from 'node:crypto';

/**
 * Time-ordered, unique queue id: 12 hex digits of milliseconds + 10 random hex digits. The random
 * digits come from randomUUID (version 4: every hex digit of its first two groups is random),
 * which draws on a batch of entropy instead of a system call for each id.
 */
export function newQueueId(now: number): string {
  const uuid = randomUUID();
  return now.toString(16).padStart(12, '0') + uuid.slice(0, 8) + uuid.slice(9, 11);
}
