import { scopeText, type ScopeJson } from './queue-scope.ts';
import { fields, plural, table, utc } from './text-table.ts';

/**
 * The answers of the queue operations as `rookery queue pause`, `resume`, `pauses`, `retry`,
 * `bounce` and `rookery messages cancel` print them; src/control-api/v1/routes/queue-operations.ts
 * says what each field holds.
 */

export interface PauseJson {
  scope: ScopeJson;
  reason: string;
  by: string;
  createdAt: string;
  /** null: until resumed. */
  until: string | null;
}

export interface CancelledJson {
  cancelled: number;
  inDelivery: number;
  dsns: number;
}

const until = (pause: PauseJson) => (pause.until === null ? 'until resumed' : `until ${utc(pause.until)}`);
/** `domain dest.test until 2026-11-30T13:00:00Z, by ops at 2026-11-30T11:00:00Z: the reason`. */
const pauseLine = (pause: PauseJson) => `${scopeText(pause.scope)} ${until(pause)}, by ${pause.by} at ${utc(pause.createdAt)}: ${pause.reason}`;

export function pausesText(list: { pauses: PauseJson[] }): string {
  if (list.pauses.length === 0) return 'No pauses in force.\n';
  return table(
    [
      { title: 'SCOPE', value: (p: PauseJson) => scopeText(p.scope) },
      { title: 'UNTIL', value: (p) => (p.until === null ? 'resumed' : utc(p.until)) },
      { title: 'SINCE', value: (p) => utc(p.createdAt) },
      { title: 'BY', value: (p) => p.by },
      { title: 'REASON', value: (p) => p.reason },
    ],
    list.pauses,
  );
}

export function pausedText(answer: { pause: PauseJson; replaced: PauseJson | null }): string {
  const replaced = answer.replaced ? `It replaces the pause of ${pauseLine(answer.replaced)}\n` : '';
  return `Paused ${pauseLine(answer.pause)}\n${replaced}`;
}

export function resumedText(answer: { ended: PauseJson | null }, scope: ScopeJson): string {
  if (!answer.ended) return `No pause of ${scopeText(scope)} was in force.\n`;
  return `Resumed ${scopeText(answer.ended.scope)}: ended its pause, by ${answer.ended.by} at ${utc(answer.ended.createdAt)}: ${answer.ended.reason}\n`;
}

export function retriedText(answer: { scope: ScopeJson; retried: number }): string {
  return `Made ${plural(answer.retried, 'queued recipient')} of ${scopeText(answer.scope)} due now.\n`;
}

/** What a cancellation did to `what` (a scope, a message). */
export function cancelledText(what: string, answer: CancelledJson): string {
  return fields([
    ['Cancelled', `${plural(answer.cancelled, 'queued recipient')} of ${what}: bounced, never attempted again`],
    ['In delivery', `${answer.inDelivery}, left to finish`],
    ['DSNs', `${answer.dsns} queued to the senders`],
  ]);
}
