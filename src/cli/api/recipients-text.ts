import type { ErasureCounts } from '../../storage/personal-data.ts';
import { suppressionPageText, type SuppressionJson } from './suppressions-text.ts';
import { fields, table, utc } from './text-table.ts';

/** The answers of /v1/recipients/{address} as `rookery recipients show|erase` prints them (src/control-api/v1/routes/recipients.ts). */

interface RecipientRowJson {
  address: string;
  state: string;
  attempts: number;
  updatedAt: string;
  events: unknown[];
  feedback: Array<{ kind: string }>;
}

interface RecipientMessageJson {
  id: string;
  tenant: string | null;
  sender: string;
  createdAt: string;
  recipients: RecipientRowJson[];
}

export interface RecipientDataJson {
  address: string;
  tenant: string | null;
  messages: RecipientMessageJson[];
  moreMessages: boolean;
  suppressions: SuppressionJson[];
  dsns: number;
  webhookDeliveries: number;
}

export interface ErasureJson {
  addressHash: string;
  /** Numbers only: the same on the wire as in the store. */
  counts: ErasureCounts;
}

/** Whose data was searched or erased. */
function scopeText(tenant: string | null): string {
  if (tenant === null) return 'every tenant';
  return tenant === '' ? 'mail of no tenant' : `tenant ${tenant}`;
}

export function recipientDataText(data: RecipientDataJson): string {
  const head = fields([
    ['Address', data.address],
    ['Searched', scopeText(data.tenant)],
    ['Messages', `${data.messages.length}${data.moreMessages ? ' (more not shown: --limit)' : ''}`],
    ['Suppressions', String(data.suppressions.length)],
    ['DSNs quoting it', String(data.dsns)],
    ['Webhook deliveries', String(data.webhookDeliveries)],
  ]);
  const rows = data.messages.flatMap((m) => m.recipients.map((r) => ({ m, r })));
  const messages =
    rows.length === 0
      ? 'No messages.\n'
      : table(
          [
            { title: 'MESSAGE', value: ({ m }: { m: RecipientMessageJson; r: RecipientRowJson }) => m.id },
            { title: 'TENANT', value: ({ m }) => m.tenant ?? '(none)' },
            { title: 'CREATED', value: ({ m }) => utc(m.createdAt) },
            { title: 'SENDER', value: ({ m }) => m.sender || '<>' },
            { title: 'STATE', value: ({ r }) => r.state },
            { title: 'ATTEMPTS', value: ({ r }) => String(r.attempts), right: true },
            { title: 'FEEDBACK', value: ({ r }) => r.feedback.map((f) => f.kind).join(', ') || '-' },
          ],
          rows,
        );
  return `${head}\n${messages}\n${suppressionPageText({ items: data.suppressions, nextCursor: null })}`;
}

export function erasureText(answer: ErasureJson, address: string, tenant: string | null): string {
  const c = answer.counts;
  const n = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;
  const lines = [
    `Erased ${address} (${scopeText(tenant)}):`,
    `  ${n(c.messages, 'message', 'messages')} deleted`,
    `  ${n(c.pending, 'message', 'messages')} kept until the other recipients are final, then deleted`,
    `  ${n(c.cancelled, 'waiting recipient', 'waiting recipients')} cancelled, without a DSN`,
    `  ${n(c.dsns, 'DSN', 'DSNs')} deleted`,
    `  ${n(c.suppressions, 'suppression entry', 'suppression entries')} kept by hash only`,
    `  ${n(c.webhookDeliveries, 'webhook delivery', 'webhook deliveries')} deleted`,
    `  ${n(c.idempotencyRecords, 'idempotency record', 'idempotency records')} deleted`,
    `  ${n(c.auditEntries, 'audit entry', 'audit entries')} redacted`,
    `Address hash (the audit log's target): ${answer.addressHash}`,
  ];
  return `${lines.join('\n')}\n`;
}
