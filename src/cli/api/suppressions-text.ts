import { fields, orDash, table, utc } from './text-table.ts';

/** The answers of /v1/suppressions as `rookery suppressions ...` prints them (src/control-api/v1/routes/suppressions.ts). */

export interface SuppressionJson {
  tenant: string | null;
  address: string | null;
  reason: string;
  source: Record<string, unknown> | null;
  createdAt: string;
  expiresAt: string | null;
}

export interface SuppressionPageJson {
  items: SuppressionJson[];
  nextCursor: string | null;
}

interface AttemptJson {
  at: string;
  attempt: number;
  code: number | null;
  enhanced: string | null;
  response: string;
}

export interface SuppressionDetailJson extends SuppressionJson {
  message: { id: string; sender: string; createdAt: string } | null;
  events: AttemptJson[];
}

const tenantText = (tenant: string | null) => tenant ?? '(none)';
const addressText = (address: string | null) => address ?? '(erased)';
const expiry = (expiresAt: string | null) => (expiresAt === null ? 'never' : utc(expiresAt));

/** What caused an entry, in a few words: `attempt of message 01J...`, `api by ops-laptop (import)`. */
export function sourceText(source: Record<string, unknown> | null): string {
  if (source === null) return '-';
  const kind = String(source.kind);
  if (typeof source.messageId === 'string') return `${kind} of message ${source.messageId}`;
  if (kind === 'api') return `api by ${orDash(source.actor as string | null)}${source.import ? ' (import)' : ''}`;
  return kind;
}

export function suppressionPageText(page: SuppressionPageJson): string {
  if (page.items.length === 0) return 'No entries.\n';
  return table(
    [
      { title: 'ADDRESS', value: (e: SuppressionJson) => addressText(e.address) },
      { title: 'TENANT', value: (e) => tenantText(e.tenant) },
      { title: 'REASON', value: (e) => e.reason },
      { title: 'CREATED', value: (e) => utc(e.createdAt) },
      { title: 'EXPIRES', value: (e) => expiry(e.expiresAt) },
      { title: 'SOURCE', value: (e) => sourceText(e.source) },
    ],
    page.items,
  );
}

export function suppressionText(e: SuppressionDetailJson): string {
  const head = fields([
    ['Address', addressText(e.address)],
    ['Tenant', tenantText(e.tenant)],
    ['Reason', e.reason],
    ['Created', utc(e.createdAt)],
    ['Expires', expiry(e.expiresAt)],
    ['Source', sourceText(e.source)],
    ['Message', e.message ? `${e.message.id} from ${e.message.sender || '<>'} at ${utc(e.message.createdAt)}` : null],
  ]);
  const attempts = e.events.map((a) => `  ${utc(a.at)}  attempt ${a.attempt}  ${[a.code, a.enhanced].filter((x) => x !== null).join(' ')}  ${a.response}\n`);
  return attempts.length ? `${head}Attempts:\n${attempts.join('')}` : head;
}

export function addedText(answer: { written: number; entries: SuppressionJson[] }): string {
  if (answer.entries.length === 1) {
    const [e] = answer.entries;
    return `Suppressed ${e!.address} (${e!.reason}) for ${e!.tenant === null ? 'mail of no tenant' : `tenant ${e!.tenant}`}, ${e!.expiresAt === null ? 'until removed' : `until ${utc(e!.expiresAt)}`}.\n`;
  }
  return `Suppressed ${answer.written} ${answer.written === 1 ? 'address' : 'addresses'}.\n`;
}

export function removedText(answer: { deleted: SuppressionJson | null }, address: string): string {
  const e = answer.deleted;
  return e === null ? `${address} was not on the list.\n` : `Removed ${e.address} (${e.reason}) from the list of ${e.tenant === null ? 'mail of no tenant' : `tenant ${e.tenant}`}.\n`;
}

export function importedText(answer: { lines: number; written: number }): string {
  return `Imported ${answer.lines} ${answer.lines === 1 ? 'entry' : 'entries'}: ${answer.written} written (an address given twice, or older than its entry, is not).\n`;
}
