/**
 * The pieces every human view of an API answer is made of: aligned columns, aligned label/value
 * blocks, times in RFC 3339 UTC to the second, ages. Every cell passes through `clean`: a remote
 * server's reply or an operator's reason reaches the terminal here, and a control character in
 * it must not move the cursor, recolour the screen or break a row in two.
 */

export interface Column<T> {
  title: string;
  value: (row: T) => string;
  /** Right-aligned (counts, sizes). */
  right?: boolean;
}

/** Columns separated by two spaces, a title row first; the last column is not padded. */
export function table<T>(columns: ReadonlyArray<Column<T>>, rows: readonly T[]): string {
  const cells = [columns.map((c) => c.title), ...rows.map((row) => columns.map((c) => clean(c.value(row))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const lines = cells.map((line) =>
    line
      .map((cell, i) => (i === line.length - 1 && !columns[i]!.right ? cell : columns[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

/** Label and value lines, the values aligned; a null value is left out. */
export function fields(rows: ReadonlyArray<readonly [string, string | null]>): string {
  const shown = rows.filter((row): row is readonly [string, string] => row[1] !== null);
  const width = Math.max(...shown.map(([label]) => label.length));
  return shown.map(([label, value]) => `${label.padEnd(width)}  ${clean(value)}\n`).join('');
}

/** An RFC 3339 time as UTC to the second (`2026-11-30T10:02:11Z`); `-` for none. */
export function utc(time: string | null): string {
  if (time === null) return '-';
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Seconds as the two largest units: `45s`, `3h59m`, `2d4h`. */
export function age(seconds: number | null): string {
  if (seconds === null) return '-';
  const units: Array<[string, number]> = [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]];
  let rest = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (parts.length === 2) break;
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  return parts.length === 0 ? '0s' : parts.join('').replace(/(\d[a-z])0[a-z]$/, '$1');
}

/** A value that may be absent: `-` for null or undefined. */
export function orDash(value: string | number | boolean | null | undefined): string {
  return value === null || value === undefined ? '-' : String(value);
}

/** `n word`, `n words`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Control characters (C0, DEL, C1) shown as `?`: text from the network is never a terminal command. */
export function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
