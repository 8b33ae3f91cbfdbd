import { BULK_TIMEOUT_MS } from './api-client.ts';
import { pick, route, type ApiCommand, type OptionValues } from './api-command.ts';
import { erasureText, recipientDataText, type ErasureJson, type RecipientDataJson } from './recipients-text.ts';

/**
 * `rookery recipients show|erase ADDRESS`: a recipient's personal data (the /v1/recipients
 * routes), entries of the one command table (api-commands.ts spreads them in).
 */

const TENANT = { value: 'TENANT', help: "one tenant's data ('' for mail of no tenant); without it every tenant's (a tenant's token: its own)" };

/** The tenant the command named: absent is every tenant's (null). */
const tenantOf = (v: OptionValues): string | null => (typeof v.tenant === 'string' ? v.tenant : null);

export const RECIPIENT_COMMANDS: Readonly<Record<string, ApiCommand>> = {
  'recipients show': {
    summary: 'Show what Rookery holds about a recipient address: messages, attempts, suppressions',
    route: 'GET /v1/recipients/{address}',
    args: ['ADDRESS'],
    options: { tenant: TENANT, limit: { value: 'N', help: 'the most messages shown, newest first (1 to 1000; default 100)', integer: true } },
    request: (v, [address]) => ({ method: 'GET', path: route('v1/recipients', address!), query: pick(v, 'tenant', 'limit') }),
    text: (data: RecipientDataJson) => recipientDataText(data),
  },
  'recipients erase': {
    summary: 'Erase a recipient address (admin tokens): its messages and events go, its suppression stays by hash',
    route: 'DELETE /v1/recipients/{address}',
    args: ['ADDRESS'],
    options: { tenant: TENANT },
    request: (v, [address]) => ({ method: 'DELETE', path: route('v1/recipients', address!), query: pick(v, 'tenant'), timeoutMs: BULK_TIMEOUT_MS }),
    text: (answer: ErasureJson, v, [address]) => erasureText(answer, address!, tenantOf(v)),
  },
};
