import { formatDomainReport } from '../../sender-domains/domain-check-format.ts';
import type { DomainReport } from '../../sender-domains/domain-check-report.ts';
import { BULK_TIMEOUT_MS } from './api-client.ts';
import { pick, route, wholeNumber, type ApiCommand } from './api-command.ts';
import { SUPPRESSION_COMMANDS } from './suppression-commands.ts';
import { RECIPIENT_COMMANDS } from './recipient-commands.ts';
import { auditPageText, type AuditPageJson } from './audit-text.ts';
import { domainListText, type DomainListJson } from './domains-text.ts';
import { EXIT } from './exit-codes.ts';
import { explanationText, type ExplanationJson } from './explain-text.ts';
import { ipListText, ipText, type IpJson } from './ips-text.ts';
import { messagePageText, messageText, type MessageJson, type MessagePageJson } from './messages-text.ts';
import { cancelledText, pausedText, pausesText, resumedText, retriedText, type CancelledJson, type PauseJson } from './queue-operations-text.ts';
import { SCOPE_OPTIONS, scopeOf, scopeText, type ScopeJson } from './queue-scope.ts';
import { queueText, type QueueJson } from './queue-text.ts';
import { reloadText, type ReloadJson } from './reload-text.ts';
import { fields } from './text-table.ts';

/**
 * Every command that is one control API route, by the words that name it (`ips weight set`). An
 * entry says which options and arguments the command takes, the request they make and how the
 * answer reads; --api, --token-file, --json (and paging) come with every entry (api-command.ts).
 */

const TIME = 'TIME';
const SINCE = { value: TIME, help: 'at or after this time (RFC 3339: 2026-11-30T08:00:00Z)' };
const UNTIL = { value: TIME, help: 'before this time (RFC 3339)' };
const PROVIDER = { value: 'NAME', help: 'one destination provider (gmail, outlook, ..., other); without it every provider' };
const REASON = { value: 'TEXT', help: 'why, for the other operators (shown by rookery ips show)', required: true };
/** When a suspension or pause ends: --for or --until; `other` says how they go together. */
const FOR = (other: string) => ({ value: 'DURATION', help: `how long: 30m, 2h, 7d (at most 366d); ${other}` });
const ENDS = (other: string) => ({ value: TIME, help: `when it ends (RFC 3339); ${other}` });
/** A cancellation's reason, told to the sender in the DSN. */
const CANCEL_REASON = { value: 'TEXT', help: 'why: recorded with each recipient and told to the sender in the DSN' };
const DSN = { help: "send each message's sender a DSN for its cancelled recipients" };

export const API_COMMANDS: Readonly<Record<string, ApiCommand>> = {
  whoami: {
    summary: 'Show the API token in use: its name, role and tenant',
    route: 'GET /v1/whoami',
    request: () => ({ method: 'GET', path: 'v1/whoami' }),
    text: (t: { name: string; role: string; tenant: string | null }) => fields([['Name', t.name], ['Role', t.role], ['Tenant', t.tenant ?? '(none)']]),
  },
  queue: {
    summary: 'Show recipients by state and the deferred backlog by domain, pool and egress IP',
    route: 'GET /v1/queue',
    options: { top: { value: 'N', help: 'groups shown per grouping (1 to 1000; default 50)', integer: true } },
    request: (v) => ({ method: 'GET', path: 'v1/queue', query: pick(v, 'top') }),
    text: (q: QueueJson) => queueText(q),
  },
  'queue pauses': {
    summary: 'List the pauses of the queue in force, on every node',
    route: 'GET /v1/queue/pauses',
    request: () => ({ method: 'GET', path: 'v1/queue/pauses' }),
    text: (list: { pauses: PauseJson[] }) => pausesText(list),
  },
  'queue pause': {
    summary: 'Hold back the queued mail of a destination domain, an egress pool or an egress IP',
    route: 'POST /v1/queue/pause',
    options: {
      ...SCOPE_OPTIONS,
      for: FOR('or --until; without either, until resumed'),
      until: ENDS('or --for'),
      reason: { ...REASON, help: 'why, for the other operators (shown by rookery queue pauses)' },
    },
    request: (v) => ({ method: 'POST', path: 'v1/queue/pause', body: { scope: scopeOf(v), ...pick(v, 'for', 'until', 'reason') } }),
    text: (answer: { pause: PauseJson; replaced: PauseJson | null }) => pausedText(answer),
  },
  'queue resume': {
    summary: 'End the pause of a domain, pool or egress IP: its mail is due again at once',
    route: 'POST /v1/queue/resume',
    options: SCOPE_OPTIONS,
    request: (v) => ({ method: 'POST', path: 'v1/queue/resume', body: { scope: scopeOf(v) } }),
    text: (answer: { ended: PauseJson | null }, v) => resumedText(answer, scopeOf(v)),
  },
  'queue retry': {
    summary: 'Make the queued mail of a domain, pool or egress IP due now',
    route: 'POST /v1/queue/retry',
    options: SCOPE_OPTIONS,
    request: (v) => ({ method: 'POST', path: 'v1/queue/retry', body: { scope: scopeOf(v) }, timeoutMs: BULK_TIMEOUT_MS }),
    text: (answer: { scope: ScopeJson; retried: number }) => retriedText(answer),
  },
  'queue bounce': {
    summary: 'Cancel the queued mail of a domain, pool or egress IP (mail in delivery finishes)',
    route: 'POST /v1/queue/bounce',
    options: { ...SCOPE_OPTIONS, reason: { ...CANCEL_REASON, required: true }, dsn: DSN },
    request: (v) => ({ method: 'POST', path: 'v1/queue/bounce', body: { scope: scopeOf(v), ...pick(v, 'reason'), dsn: v.dsn === true }, timeoutMs: BULK_TIMEOUT_MS }),
    text: (answer: CancelledJson & { scope: ScopeJson }) => cancelledText(scopeText(answer.scope), answer),
  },
  messages: {
    summary: 'List messages, newest first, a page at a time',
    route: 'GET /v1/messages',
    options: {
      state: { value: 'STATE', help: 'with a recipient in this state: queued, delivering, delivered, bounced' },
      sender: { value: 'ADDRESS', help: 'from this envelope sender' },
      recipient: { value: 'ADDRESS', help: 'to this recipient' },
      domain: { value: 'DOMAIN', help: 'to a recipient at this domain' },
      pool: { value: 'POOL', help: 'sent through this egress pool' },
      since: SINCE,
      until: UNTIL,
    },
    paged: true,
    request: (v) => ({ method: 'GET', path: 'v1/messages', query: pick(v, 'state', 'sender', 'recipient', 'domain', 'pool', 'since', 'until') }),
    text: (page: MessagePageJson) => messagePageText(page),
  },
  'messages show': {
    summary: 'Show a message: envelope, each recipient and every delivery attempt',
    route: 'GET /v1/messages/{id}',
    args: ['ID'],
    request: (_v, [id]) => ({ method: 'GET', path: route('v1/messages', id!) }),
    text: (m: MessageJson) => messageText(m),
  },
  'messages cancel': {
    summary: 'Cancel the queued recipients of a message (those in delivery finish)',
    route: 'DELETE /v1/messages/{id}',
    args: ['ID'],
    options: { reason: CANCEL_REASON, dsn: { help: 'send the sender a DSN for the cancelled recipients' } },
    // The route reads them from the query: a DELETE has no body.
    request: (v, [id]) => ({ method: 'DELETE', path: route('v1/messages', id!), query: { ...pick(v, 'reason'), dsn: v.dsn === true ? 'true' : undefined }, timeoutMs: BULK_TIMEOUT_MS }),
    text: (answer: CancelledJson & { id: string }) => cancelledText(`message ${answer.id}`, answer),
  },
  ips: {
    summary: 'List the egress IPs: pool, weight, warm-up, restrictions',
    route: 'GET /v1/ips',
    request: () => ({ method: 'GET', path: 'v1/ips' }),
    text: (list: { ips: IpJson[] }) => ipListText(list),
  },
  'ips show': {
    summary: 'Show an egress IP: weights, warm-up usage, reputation and restrictions per provider',
    route: 'GET /v1/ips/{address}',
    args: ['ADDRESS'],
    request: (_v, [address]) => ({ method: 'GET', path: route('v1/ips', address!) }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips suspend': {
    summary: 'Suspend an egress IP for one provider or every one, for a time or until a time',
    route: 'POST /v1/ips/{address}/suspend',
    args: ['ADDRESS'],
    options: {
      provider: PROVIDER,
      for: FOR('give this or --until'),
      until: ENDS('give this or --for'),
      reason: REASON,
    },
    request: (v, [address]) => ({ method: 'POST', path: route('v1/ips', address!, 'suspend'), body: pick(v, 'provider', 'for', 'until', 'reason') }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips resume': {
    summary: "End an operator's suspension of an egress IP (a reaction's runs to its end)",
    route: 'POST /v1/ips/{address}/resume',
    args: ['ADDRESS'],
    options: { provider: { value: 'NAME', help: "end only this provider's suspension; without it every operator suspension of the IP" } },
    request: (v, [address]) => ({ method: 'POST', path: route('v1/ips', address!, 'resume'), body: pick(v, 'provider') }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips weight set': {
    summary: 'Select an egress IP with WEIGHT in place of the configured weight (0: no new mail)',
    route: 'PUT /v1/ips/{address}/weight',
    args: ['ADDRESS', 'WEIGHT'],
    options: { reason: REASON },
    request: (v, [address, weight]) => ({
      method: 'PUT',
      path: route('v1/ips', address!, 'weight'),
      body: { weight: wholeNumber(weight!, 'WEIGHT'), ...pick(v, 'reason') },
    }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips weight clear': {
    summary: 'Return an egress IP to its configured weight',
    route: 'DELETE /v1/ips/{address}/weight',
    args: ['ADDRESS'],
    request: (_v, [address]) => ({ method: 'DELETE', path: route('v1/ips', address!, 'weight') }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips warmup restart': {
    summary: "Start an egress IP's warm-up plan (or another) again from today",
    route: 'POST /v1/ips/{address}/warmup',
    args: ['ADDRESS'],
    options: {
      plan: { value: 'PLAN', help: "a warm-up plan (config/warmup-plans.yaml or warmup.plans); without it the IP's configured plan" },
      reason: REASON,
    },
    request: (v, [address]) => ({ method: 'POST', path: route('v1/ips', address!, 'warmup'), body: pick(v, 'plan', 'reason') }),
    text: (ip: IpJson) => ipText(ip),
  },
  'ips warmup clear': {
    summary: 'Return an egress IP to its configured warm-up plan (or none)',
    route: 'DELETE /v1/ips/{address}/warmup',
    args: ['ADDRESS'],
    request: (_v, [address]) => ({ method: 'DELETE', path: route('v1/ips', address!, 'warmup') }),
    text: (ip: IpJson) => ipText(ip),
  },
  explain: {
    summary: 'Show the route a message would take now and why: pool, next hops, each egress IP, DKIM',
    route: 'GET /v1/explain',
    args: ['SENDER', 'RECIPIENT'],
    options: {
      pool: { value: 'POOL', help: 'the pool the message asks for (X-Rookery-Pool), honoured only when --user may use it' },
      user: { value: 'USER', help: 'the SMTP user that submits it (smtp.users[].username)' },
      tenant: { value: 'TENANT', help: "the tenant it is sent for; without it the user's tenant, or none" },
    },
    request: (v, [sender, recipient]) => ({ method: 'GET', path: 'v1/explain', query: { sender, recipient, ...pick(v, 'pool', 'user', 'tenant') } }),
    text: (e: ExplanationJson) => explanationText(e),
  },
  domains: {
    summary: 'List the sender domains and their DKIM keys',
    route: 'GET /v1/domains',
    request: () => ({ method: 'GET', path: 'v1/domains' }),
    text: (list: DomainListJson) => domainListText(list),
  },
  audit: {
    summary: 'List the audit log, newest first, a page at a time (admin tokens)',
    route: 'GET /v1/audit',
    options: {
      actor: { value: 'NAME', help: 'requests made with this token (api.tokens[].name)' },
      route: { value: 'PATTERN', help: 'requests to this route pattern, e.g. /v1/ips/:address/suspend' },
      status: { value: 'CODE', help: 'answered with this HTTP status', integer: true },
      outcome: { value: 'CODE', help: 'answered with this problem code (FORBIDDEN, ...) or OK' },
      since: SINCE,
      until: UNTIL,
    },
    paged: true,
    request: (v) => ({ method: 'GET', path: 'v1/audit', query: pick(v, 'actor', 'route', 'status', 'outcome', 'since', 'until') }),
    text: (page: AuditPageJson) => auditPageText(page),
  },
  reload: {
    summary: 'Read the configuration file again and apply it, as SIGHUP does (admin tokens)',
    route: 'POST /v1/reload',
    request: () => ({ method: 'POST', path: 'v1/reload' }),
    text: (answer: ReloadJson) => reloadText(answer),
    problemPerLine: true,
  },
  ...SUPPRESSION_COMMANDS,
  ...RECIPIENT_COMMANDS,
};

/**
 * `rookery domains check DOMAIN --remote`: the running daemon checks the domain against its own
 * configuration. Not in the table: `domains check` without --remote runs the check here, from
 * the configuration file (domains-check.ts chooses).
 */
export const REMOTE_DOMAIN_CHECK: ApiCommand = {
  summary: "Check a sender domain's DNS, asked of the running daemon",
  route: 'POST /v1/domains/{domain}/check',
  args: ['DOMAIN'],
  request: (_v, [domain]) => ({ method: 'POST', path: route('v1/domains', domain!, 'check') }),
  text: (report: DomainReport) => formatDomainReport(report),
  exitCode: (report: DomainReport) => (report.status === 'error' ? EXIT.failure : EXIT.ok),
};
