import type { TenantsConfig } from '../config/tenant-schema.ts';
import type { UnsubscribeConfig, UnsubscribeSettings } from '../config/unsubscribe-schema.ts';
import { authorDomain } from '../mail/authors.ts';
import { hasHeader, splitHeader } from '../mail/message-headers.ts';
import { createMailtoAddresses, type MailtoAddresses } from './unsubscribe-mailto-address.ts';
import { createUnsubscribeTokens, type OpenedToken, type UnsubscribeTokens } from './unsubscribe-token.ts';

/**
 * The unsubscribe links of one configuration: which accepted messages get a List-Unsubscribe
 * field and what it says (for the queue), and reading the links back (for the public listener
 * and the mailto handler). Made again whole when the configuration is reloaded.
 */

/** Makes the List-Unsubscribe fields of one recipient's copy of a message. */
export type UnsubscribeFields = (recipient: string, messageId: string, now: number) => string[];

export interface UnsubscribeLinks {
  /**
   * How to make the fields for a message of `tenant`, or null when it gets none: unsubscribe is
   * off for its From domain / tenant, or the application wrote its own List-Unsubscribe (or
   * List-Unsubscribe-Post), which is kept as it is.
   */
  fieldsFor(tenant: string | null, message: Buffer): UnsubscribeFields | null;
  /** The claims of an https link's token, or why it is refused. */
  openLink(token: string): OpenedToken;
  /** The queue id a mailto address names, or null when it is not an authentic one at a configured mailto domain. */
  mailtoMessage(address: string): string | null;
}

/** RFC 5322 2.1.1: a line is at most 998 octets; the https URI shares its line with the field name. */
const MAX_LINE = 998;
const FIELD = 'List-Unsubscribe: ';

export function createUnsubscribeLinks(config: { unsubscribe: UnsubscribeConfig; tenants: TenantsConfig }): UnsubscribeLinks {
  const { unsubscribe } = config;
  const secret = unsubscribe.secret;
  const tokens: UnsubscribeTokens | null = secret === null ? null : createUnsubscribeTokens(secret, unsubscribe.previousSecrets);
  const mailto: MailtoAddresses | null = secret === null ? null : createMailtoAddresses(secret, unsubscribe.previousSecrets);
  const mailtoDomains = new Set(
    [unsubscribe.mailto, ...Object.values(unsubscribe.domains).map((s) => s.mailto), ...Object.values(config.tenants).map((t) => t.unsubscribe?.mailto)].filter(
      (d): d is string => typeof d === 'string',
    ),
  );

  /** The first level that has an entry decides: the From domain's, the tenant's, the section's. */
  function settingsFor(tenant: string | null, message: Buffer): UnsubscribeSettings {
    const domain = authorDomain(message);
    if (domain !== null && Object.hasOwn(unsubscribe.domains, domain)) return unsubscribe.domains[domain]!;
    const own = tenant !== null && Object.hasOwn(config.tenants, tenant) ? config.tenants[tenant]!.unsubscribe : undefined;
    return own ?? { enabled: unsubscribe.enabled, baseUrl: null, mailto: null };
  }

  return {
    fieldsFor(tenant, message) {
      if (!tokens || !mailto) return null;
      const { header } = splitHeader(message);
      if (hasHeader(header, 'List-Unsubscribe') || hasHeader(header, 'List-Unsubscribe-Post')) return null;
      const settings = settingsFor(tenant, message);
      if (!settings.enabled) return null;
      const baseUrl = settings.baseUrl ?? unsubscribe.publicBaseUrl;
      const mailtoDomain = settings.mailto ?? unsubscribe.mailto;
      if (baseUrl === null && mailtoDomain === null) return null;

      return (recipient, messageId, now) => {
        const uris: string[] = [];
        if (baseUrl !== null) {
          const link = `<${baseUrl}/u/${tokens.seal({ tenant, address: recipient, messageId, issued: now })}>`;
          // Only an address far beyond RFC 5321's limits makes the line too long: that copy keeps the mailto form alone.
          if (FIELD.length + link.length + 1 <= MAX_LINE) uris.push(link);
        }
        if (mailtoDomain !== null) uris.push(`<mailto:${mailto.address(messageId, mailtoDomain)}?subject=unsubscribe>`);
        if (uris.length === 0) return [];
        const oneClick = baseUrl !== null && uris[0]!.startsWith('<https:');
        // Folded between the URIs: each stays on a line of its own, well inside 998 octets.
        return [`${FIELD}${uris.join(',\r\n ')}`, ...(oneClick ? ['List-Unsubscribe-Post: List-Unsubscribe=One-Click'] : [])];
      };
    },

    openLink(token) {
      // Without a secret (removed by a reload while the listener runs) no token authenticates.
      return tokens ? tokens.open(token) : { ok: false, reason: 'forged' };
    },

    mailtoMessage(address) {
      return mailto ? mailto.messageOf(address, mailtoDomains) : null;
    },
  };
}
