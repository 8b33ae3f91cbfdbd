import { clean } from './text-table.ts';

/** POST /v1/reload's answer as `rookery reload` prints it (src/control-api/v1/routes/reload.ts). */

export interface ReloadJson {
  source: string;
  changed: string[];
  restartRequired: string[];
  /** What was applied but deserves a look; the route may not send any. */
  warnings?: string[];
}

export function reloadText(answer: ReloadJson): string {
  const list = (paths: string[]) => paths.join(', ');
  const lines = [`Reloaded ${answer.source}`, `Changed: ${answer.changed.length ? list(answer.changed) : 'nothing'}`];
  if (answer.restartRequired.length) lines.push(`Waiting for a restart (the running value stays until then): ${list(answer.restartRequired)}`);
  for (const warning of answer.warnings ?? []) lines.push(`Warning: ${warning}`);
  return lines.map((line) => `${clean(line)}\n`).join('');
}
