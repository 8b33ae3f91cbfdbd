/**
 * The `since` and `until` query parameters of a listing as milliseconds. The schema's date-time
 * format lets through what Date cannot read (a leap second, 23:59:60): such a time is a 400
 * naming its parameter, never a NaN handed to the store.
 */
export function timeBounds(query: { since?: string; until?: string }): { since: number | null; until: number | null } | { path: string; message: string } {
  const bounds = { since: null as number | null, until: null as number | null };
  for (const name of ['since', 'until'] as const) {
    const value = query[name];
    if (value === undefined) continue;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) return { path: `querystring.${name}`, message: `not a time this API can read: ${JSON.stringify(value)}` };
    bounds[name] = ms;
  }
  return bounds;
}
