import { readable } from '../mail/remote-text.ts';
import type { CheckArea, CheckStatus, DomainReport } from './domain-check-report.ts';

/**
 * The report as `rookery domains check` prints it for a person: the checks grouped by area, one
 * line each with a mark (✓ ok, ! warning, ✗ error) and the message, the fix indented below it,
 * and a last line with the totals. A message may quote what DNS answered, which whoever runs the
 * zone wrote: its control characters are written out before they reach the terminal.
 */

const MARK: Record<CheckStatus, string> = { ok: '✓', warn: '!', error: '✗' };
const AREAS: ReadonlyArray<[CheckArea, string]> = [
  ['dkim', 'DKIM'],
  ['spf', 'SPF'],
  ['dmarc', 'DMARC'],
  ['return-path', 'Return path'],
];

export function formatDomainReport(report: DomainReport): string {
  const lines = [`Domain ${report.domain}${report.returnPathDomain === report.domain ? '' : ` (return path ${report.returnPathDomain})`}, checked ${report.checkedAt}`];
  for (const [area, title] of AREAS) {
    const checks = report.checks.filter((check) => check.area === area);
    if (checks.length === 0) continue;
    lines.push('', title);
    for (const check of checks) {
      lines.push(`  ${MARK[check.status]} ${readable(check.message)}`);
      if (check.fix) lines.push(`      fix: ${readable(check.fix)}`);
    }
  }
  const { ok, warn, error } = report.counts;
  const verdict = error > 0 ? 'not ready' : warn > 0 ? 'ready, with warnings' : 'ready';
  lines.push('', `${report.domain}: ${verdict} (${ok} ok, ${plural(warn, 'warning')}, ${plural(error, 'error')})`);
  return `${lines.join('\n')}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
