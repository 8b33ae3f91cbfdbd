/**
 * The user information of a URL (`scheme://user:password@`), up to the last "@" before the host
 * ends, as a password may hold an "@". A JSON escape (`\"`) counts as part of it, so a finished
 * log line is masked as well as plain text. It starts only where a scheme can start, so a long
 * run of letters is scanned once.
 */
const URL_USERINFO = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)(?:\\.|[^\s/?#"\\])*@/gi;
/** An API token (src/access/api-token.ts), wherever it stands: in a path, a query, a header. */
const API_TOKEN = /rk_[A-Za-z0-9_-]{43}/g;
/** A webhook signing secret (src/webhooks/signature.ts), should one ever reach a line. */
const WEBHOOK_SECRET = /whsec_[A-Za-z0-9+/=]+/g;
/** A query parameter that carries a secret: `?password=`, `&sslpassword=`, `&token=`. */
const SECRET_PARAM = /([?&][\w.-]*(?:pass|secret|token)[\w.-]*=)(?:\\.|[^\s&#"\\])*/gi;

/**
 * Masks the credentials of every URL in `text`, secret query parameters (ioredis and pg both
 * take `?password=`): `redis://***@cache:6379/0?password=***`, API tokens (`rk_***`) and webhook secrets (`whsec_***`). For log lines, probe answers and
 * anything else that may quote a connection string.
 */
export function maskCredentials(text: string): string {
  // Every log line passes here, and few hold a URL or a query: the costlier scans only run for those.
  const masked = text.includes('://') ? text.replace(URL_USERINFO, '$1***@') : text;
  const unparamed = masked.includes('=') && (masked.includes('?') || masked.includes('&')) ? masked.replace(SECRET_PARAM, '$1***') : masked;
  const untokened = unparamed.includes('rk_') ? unparamed.replace(API_TOKEN, 'rk_***') : unparamed;
  return untokened.includes('whsec_') ? untokened.replace(WEBHOOK_SECRET, 'whsec_***') : untokened;
}
