import { formatDomainReport } from '../../sender-domains/domain-check-format.ts';
import type { DomainReport } from '../../sender-domains/domain-check-report.ts';
import { pick, route, wholeNumber, type ApiCommand } from './api-command.ts';
import { auditPageText, type AuditPageJson } from './audit-text.ts';
import { domainListText, type DomainListJson } from './domains-text.ts';
import { EXIT } from './exit-codes.ts';
import { ipListText, ipText, type IpJson } from './ips-text.ts';
import { messagePageText, messageText, type MessageJson, type MessagePageJson } from './messages-text.ts';
import { queueText, type QueueJson } from './queue-text.ts';
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
      for: { value: 'DURATION', help: 'how long: 30m, 2h, 7d (at most 366d); give this or --until' },
      until: { value: TIME, help: 'when it ends (RFC 3339); give this or --for' },
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
