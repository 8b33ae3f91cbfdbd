import { MalformedCursorError } from './cursor.ts';

/**
 * What a paged listing (/v1/messages, /v1/audit) reads from its query beyond its filters: where
 * the page starts (the cursor, decoded by the listing's own decoder) and the `since`/`until`
 * bounds in milliseconds. A cursor the API did not give out, or a time the schema's date-time
 * format lets through but no Date reads (a leap second, 23:59:60), is the problem of a 400
 * naming its parameter, never a NaN or a fresh start handed to the store.
 */
export function readPageQuery<K>(
  query: { cursor?: string; since?: string; until?: string },
  decodeCursor: (cursor: string) => K,
): { after: K | null; since: number | null; until: number | null } | { path: string; message: string } {
  let after: K | null = null;
  try {
    if (query.cursor !== undefined) after = decodeCursor(query.cursor);
  } catch (err) {
    if (!(err instanceof MalformedCursorError)) throw err;
    return { path: 'querystring.cursor', message: err.message };
  }
  const bounds = { since: null as number | null, until: null as number | null };
  for (const name of ['since', 'until'] as const) {
    const value = query[name];
    if (value === undefined) continue;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) return { path: `querystring.${name}`, message: `not a time this API can read: ${JSON.stringify(value)}` };
    bounds[name] = ms;
  }
  return { after, ...bounds };
}
