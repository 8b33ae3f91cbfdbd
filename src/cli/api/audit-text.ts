import { orDash, table, utc } from './text-table.ts';

/** GET /v1/audit as `rookery audit` prints it; the before/after of a change is in --json. */

interface AuditEntry {
  at: string;
  actor: string | null;
  clientAddress: string;
  method: string;
  route: string;
  target: string | null;
  change: object | null;
  status: number;
  outcome: string;
}

export interface AuditPageJson {
  items: AuditEntry[];
  nextCursor: string | null;
}

export function auditPageText(page: AuditPageJson): string {
  if (page.items.length === 0) return 'No audit entries.\n';
  return table(
    [
      { title: 'AT', value: (e: AuditEntry) => utc(e.at) },
      { title: 'ACTOR', value: (e) => e.actor ?? '(no valid token)' },
      { title: 'CLIENT', value: (e) => e.clientAddress },
      { title: 'REQUEST', value: (e) => `${e.method} ${e.route}` },
      { title: 'TARGET', value: (e) => orDash(e.target) },
      { title: 'STATUS', value: (e) => String(e.status), right: true },
      { title: 'OUTCOME', value: (e) => e.outcome + (e.change ? ' (changed)' : '') },
    ],
    page.items,
  );
}
