import type { SuppressionRecord } from '../../storage/suppressions.ts';
import type { EntryFields } from './suppression-input.ts';

/**
 * The files of POST /v1/suppressions/import and GET /v1/suppressions/export: CSV (RFC 4180, a
 * header line naming the columns) and NDJSON (one JSON object a line). What an export writes an
 * import reads back: the same columns, and created_at kept.
 */

export type FileFormat = 'csv' | 'ndjson';

export const FILE_TYPES: Readonly<Record<FileFormat, string>> = { csv: 'text/csv', ndjson: 'application/x-ndjson' };

/** CSV columns, in the order an export writes them; an import needs `address` and takes any of the others. */
export const CSV_COLUMNS = ['address', 'reason', 'expires_at', 'created_at', 'tenant'] as const;
type CsvColumn = (typeof CSV_COLUMNS)[number];

/** One line of an import: its number (1 is the first line of the file), the entry's fields and the tenant it names. */
export interface ImportLine {
  line: number;
  fields: EntryFields;
  /** The line's tenant column or key: undefined when not given, '' or null for mail of no tenant. */
  tenant: string | null | undefined;
}

/** The lines of a file (blank lines skipped), or the problem that stops it being read at all. */
export function parseImport(format: FileFormat, text: string): { lines: ImportLine[]; problems: Array<{ line: number; message: string }> } | { problem: { line: number; message: string } } {
  const raw = text.split(/\r?\n/);
  return format === 'csv' ? parseCsv(raw) : parseNdjson(raw);
}

function parseCsv(raw: string[]) {
  const header = splitCsvLine(raw[0] ?? '');
  if (header === null) return { problem: { line: 1, message: 'the header line is not CSV' } };
  const names = header.map((name) => name.trim().toLowerCase());
  const unknown = names.find((name) => !CSV_COLUMNS.includes(name as CsvColumn));
  if (unknown !== undefined) return { problem: { line: 1, message: `unknown column ${JSON.stringify(unknown)} (columns: ${CSV_COLUMNS.join(', ')})` } };
  if (!names.includes('address')) return { problem: { line: 1, message: 'the header line needs an address column (address,reason,expires_at)' } };
  if (new Set(names).size !== names.length) return { problem: { line: 1, message: 'a column is named twice' } };
  const lines: ImportLine[] = [];
  const problems: Array<{ line: number; message: string }> = [];
  raw.slice(1).forEach((text, i) => {
    const line = i + 2;
    if (text.trim() === '') return;
    const cells = splitCsvLine(text);
    if (cells === null || cells.length !== names.length) return void problems.push({ line, message: `not ${names.length} CSV fields` });
    const cell = (name: CsvColumn): string | null | undefined => {
      const at = names.indexOf(name);
      if (at < 0) return undefined;
      const value = fromCsvCell(cells[at]!.trim());
      return value === '' ? null : value;
    };
    lines.push({
      line,
      fields: { address: cell('address') ?? '', reason: cell('reason'), expiresAt: cell('expires_at'), createdAt: cell('created_at') },
      tenant: cell('tenant'),
    });
  });
  return { lines, problems };
}

function parseNdjson(raw: string[]) {
  const lines: ImportLine[] = [];
  const problems: Array<{ line: number; message: string }> = [];
  const keys = new Set(['address', 'reason', 'expiresAt', 'expiresIn', 'createdAt', 'tenant', 'source']);
  raw.forEach((text, i) => {
    const line = i + 1;
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return void problems.push({ line, message: 'not JSON' });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return void problems.push({ line, message: 'not a JSON object' });
    const o = value as Record<string, unknown>;
    const unknown = Object.keys(o).find((key) => !keys.has(key));
    if (unknown !== undefined) return void problems.push({ line, message: `unknown key ${JSON.stringify(unknown)}` });
    if (o.tenant !== undefined && o.tenant !== null && typeof o.tenant !== 'string') return void problems.push({ line, message: 'tenant: not a string or null' });
    // `source` is what an export writes; an import records its own.
    lines.push({ line, fields: { address: o.address, reason: o.reason, expiresAt: o.expiresAt, expiresIn: o.expiresIn, createdAt: o.createdAt }, tenant: o.tenant as string | null | undefined });
  });
  return { lines, problems };
}

/** The fields of one CSV line (RFC 4180 quoting; a quoted field does not span lines), or null when its quotes do not close. */
export function splitCsvLine(text: string): string[] | null {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) return null;
        value += text.slice(i, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
          continue;
        }
        i = quote + 1;
        break;
      }
      cells.push(value);
      if (i === text.length) return cells;
      if (text[i] !== ',') return null;
      i++;
    } else {
      const comma = text.indexOf(',', i);
      if (comma < 0) {
        cells.push(text.slice(i));
        return cells;
      }
      cells.push(text.slice(i, comma));
      i = comma + 1;
    }
  }
}

/**
 * A spreadsheet takes a cell starting with = + - @ (or a tab or CR) for a formula, and an address
 * can start with any of them: such a cell is written behind a ' (OWASP's advice against CSV
 * injection), which an import of the file takes off again.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

function csvCell(value: string): string {
  const safe = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) || safe !== safe.trim() ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function fromCsvCell(value: string): string {
  return value.startsWith("'") && FORMULA_START.test(value.slice(1)) ? value.slice(1) : value;
}

const rfc3339 = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The first line of a CSV export. */
export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\n`;
}

/** One entry as a line of an export; an erased entry (no address) has none, and is left out. */
export function exportLine(format: FileFormat, e: SuppressionRecord): string {
  if (e.address === null) return '';
  if (format === 'ndjson') {
    return `${JSON.stringify({ address: e.address, reason: e.reason, expiresAt: rfc3339(e.expiresAt), createdAt: rfc3339(e.createdAt), tenant: e.tenant || null, source: e.source })}\n`;
  }
  return `${[e.address, e.reason, rfc3339(e.expiresAt) ?? '', rfc3339(e.createdAt)!, e.tenant].map(csvCell).join(',')}\n`;
}
