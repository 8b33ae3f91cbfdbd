import { parseDuration } from '../../config/duration.ts';

/**
 * When an operator's suspension or pause ends: `until` (RFC 3339) or `for` (a duration from now),
 * one request body's pair of fields, read the same way by every route that takes them.
 */

/** The longest an operator's suspension or pause may last: a year; beyond it, a date the API cannot show. */
const MAX_EXPIRY_MS = 366 * 86_400_000;

/** The body properties, for a route's schema; `what` names the thing that ends ("suspension"). */
export function expiryProperties(what: string) {
  return {
    until: { type: 'string', format: 'date-time', description: `When the ${what} ends (RFC 3339); give this or \`for\`.` },
    for: { type: 'string', description: `How long the ${what} lasts: 30m, 2h, 7d (a number with ms, s, m, h or d); give this or \`until\`.` },
  } as const;
}

export type ExpiryFields = { until?: string; for?: string };

/**
 * The end as ms after `now`, from exactly one of `until` and `for`; with neither, null when the
 * end is optional (until an operator ends it). A problem names the field: body.for, body.until.
 */
export function readExpiry(body: ExpiryFields, now: number, optional: boolean): { ms: number | null } | { error: { path: string; message: string } } {
  if (body.until !== undefined && body.for !== undefined) return { error: { path: 'body', message: `give ${optional ? 'at most' : 'exactly'} one of until and for` } };
  if (body.for !== undefined) {
    const ms = parseDuration(body.for);
    if (ms === null || ms <= 0) return { error: { path: 'body.for', message: `not a duration above zero (30m, 2h, 7d): ${JSON.stringify(body.for)}` } };
    if (ms > MAX_EXPIRY_MS) return { error: { path: 'body.for', message: 'at most 366d' } };
    return { ms: now + ms };
  }
  if (body.until !== undefined) {
    const ms = Date.parse(body.until);
    if (!(ms > now)) return { error: { path: 'body.until', message: `not in the future: ${body.until}` } };
    if (ms - now > MAX_EXPIRY_MS) return { error: { path: 'body.until', message: 'at most 366 days from now' } };
    return { ms };
  }
  return optional ? { ms: null } : { error: { path: 'body', message: 'give exactly one of until and for' } };
}
