import { fields, orDash, table, utc } from './text-table.ts';

/** GET /v1/messages and GET /v1/messages/{id} as `rookery messages` prints them (never a body: the API has none to give). */

interface MessageFields {
  id: string;
  sender: string;
  pool: string;
  size: number;
  createdAt: string;
  messageId: string | null;
  source: string;
  submitter: string | null;
  clientAddress: string | null;
}

interface MessageSummary extends MessageFields {
  recipientStates: Record<string, number>;
}

export interface MessagePageJson {
  items: MessageSummary[];
  nextCursor: string | null;
}

interface AttemptEvent {
  at: string;
  attempt: number;
  disposition: string;
  code: number | null;
  enhanced: string | null;
  response: string;
  remoteHost: string | null;
  egressIp: string | null;
  possibleDuplicate: boolean;
}

interface Recipient {
  address: string;
  state: string;
  attempts: number;
  nextAttemptAt: string | null;
  /** Absent from a daemon older than pause parking. */
  paused?: boolean;
  updatedAt: string;
  dsn: { id: string; createdAt: string } | null;
  events: AttemptEvent[];
}

export interface MessageJson extends MessageFields {
  recipients: Recipient[];
}

/** The null reverse-path (a DSN's sender) as SMTP writes it. */
const sender = (address: string) => address || '<>';

export function messagePageText(page: MessagePageJson): string {
  if (page.items.length === 0) return 'No messages.\n';
  return table(
    [
      { title: 'ID', value: (m: MessageSummary) => m.id },
      { title: 'CREATED', value: (m) => utc(m.createdAt) },
      { title: 'SENDER', value: (m) => sender(m.sender) },
      { title: 'POOL', value: (m) => m.pool },
      { title: 'SIZE', value: (m) => String(m.size), right: true },
      { title: 'RECIPIENTS', value: (m) => states(m.recipientStates) },
    ],
    page.items,
  );
}

/** `2 delivered, 1 queued`: the states some recipient is in. */
function states(counts: Record<string, number>): string {
  return Object.entries(counts).flatMap(([state, n]) => (n > 0 ? [`${n} ${state}`] : [])).join(', ') || '-';
}

export function messageText(message: MessageJson): string {
  const head = fields([
    ['ID', message.id],
    ['Created', utc(message.createdAt)],
    ['Sender', sender(message.sender)],
    ['Message-ID', message.messageId],
    ['Pool', message.pool],
    ['Size', `${message.size} bytes`],
    ['Source', message.source],
    ['Submitter', message.submitter],
    ['Client', message.clientAddress],
  ]);
  const recipients = table(
    [
      { title: 'RECIPIENT', value: (r: Recipient) => r.address },
      { title: 'STATE', value: (r) => (r.paused ? `${r.state} (paused)` : r.state) },
      { title: 'ATTEMPTS', value: (r) => String(r.attempts), right: true },
      { title: 'NEXT ATTEMPT', value: (r) => utc(r.nextAttemptAt) },
      { title: 'UPDATED', value: (r) => utc(r.updatedAt) },
      { title: 'DSN', value: (r) => r.dsn?.id ?? '-' },
    ],
    message.recipients,
  );
  const events = message.recipients.flatMap((r) => r.events.map((e) => ({ ...e, recipient: r.address })));
  const attempts =
    events.length === 0
      ? 'No attempts yet.\n'
      : table(
          [
            { title: 'AT', value: (e: AttemptEvent & { recipient: string }) => utc(e.at) },
            { title: 'RECIPIENT', value: (e) => e.recipient },
            { title: '#', value: (e) => String(e.attempt), right: true },
            { title: 'RESULT', value: (e) => (e.possibleDuplicate ? `${e.disposition} (possible duplicate)` : e.disposition) },
            { title: 'EGRESS IP', value: (e) => orDash(e.egressIp) },
            { title: 'REMOTE HOST', value: (e) => orDash(e.remoteHost) },
            { title: 'REPLY', value: (e) => e.response },
          ],
          events.sort((a, b) => Date.parse(a.at) - Date.parse(b.at)),
        );
  return `${head}\n${recipients}\n${attempts}`;
}
