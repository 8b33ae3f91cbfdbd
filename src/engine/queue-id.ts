import { randomBytes } from 'node:crypto';

/** Time-ordered, unique queue id: 12 hex digits of milliseconds + 10 random hex digits. */
export function newQueueId(now: number): string {
  return now.toString(16).padStart(12, '0') + randomBytes(5).toString('hex');
}
