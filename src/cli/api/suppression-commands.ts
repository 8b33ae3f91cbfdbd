import { readFileSync } from 'node:fs';
import { FILE_TYPES, type FileFormat } from '../../control-api/v1/suppression-files.ts';
import { BULK_TIMEOUT_MS } from './api-client.ts';
import { pick, route, UsageError, type ApiCommand } from './api-command.ts';
import { addedText, importedText, removedText, suppressionPageText, suppressionText, type SuppressionDetailJson, type SuppressionJson, type SuppressionPageJson } from './suppressions-text.ts';

/**
 * `rookery suppressions ...`: the commands of the /v1/suppressions routes, entries of the one
 * command table (api-commands.ts spreads them in). import sends a file and export writes the
 * answer to stdout as it arrives, the two commands whose bodies are not JSON.
 */

const SINCE = { value: 'TIME', help: 'created at or after this time (RFC 3339: 2026-11-30T08:00:00Z)' };
const UNTIL = { value: 'TIME', help: 'created before this time (RFC 3339)' };
const REASON = { value: 'REASON', help: 'hard-bounce, complaint, unsubscribe or manual' };
const EVERY_TENANT = { value: 'TENANT', help: "one tenant's list ('' for mail of no tenant); without it every tenant's (a tenant's token: its own)" };
const ONE_TENANT = { value: 'TENANT', help: "the tenant's list; without it mail of no tenant's (a tenant's token: its own)" };

/** The file to import: csv or ndjson as --format says, else by its name. */
function fileFormat(format: string | boolean | undefined, file: string): FileFormat {
  if (format === 'csv' || format === 'ndjson') return format;
  if (format !== undefined) throw new UsageError(`--format ${JSON.stringify(format)}: csv or ndjson`);
  return /\.(ndjson|jsonl)$/i.test(file) ? 'ndjson' : 'csv';
}

/** The file's bytes (`-`: standard input). */
function readUpload(file: string): Buffer {
  try {
    return readFileSync(file === '-' ? 0 : file);
  } catch (err) {
    throw new UsageError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

export const SUPPRESSION_COMMANDS: Readonly<Record<string, ApiCommand>> = {
  'suppressions list': {
    summary: 'List the suppression list, by tenant, newest first, a page at a time',
    route: 'GET /v1/suppressions',
    options: {
      tenant: EVERY_TENANT,
      reason: REASON,
      address: { value: 'ADDRESS', help: 'the entries of this address (case ignored)' },
      since: SINCE,
      until: UNTIL,
    },
    paged: true,
    request: (v) => ({ method: 'GET', path: 'v1/suppressions', query: pick(v, 'tenant', 'reason', 'address', 'since', 'until') }),
    text: (page: SuppressionPageJson) => suppressionPageText(page),
  },
  'suppressions show': {
    summary: 'Show an entry of the suppression list and the attempt that caused it',
    route: 'GET /v1/suppressions/{address}',
    args: ['ADDRESS'],
    options: { tenant: ONE_TENANT },
    request: (v, [address]) => ({ method: 'GET', path: route('v1/suppressions', address!), query: pick(v, 'tenant') }),
    text: (e: SuppressionDetailJson) => suppressionText(e),
  },
  'suppressions add': {
    summary: 'Put an address on the suppression list: its mail is refused (or dropped) from now on',
    route: 'POST /v1/suppressions',
    args: ['ADDRESS'],
    options: {
      tenant: { ...ONE_TENANT, help: "the tenant's list; without it mail of no tenant (a tenant's token: its own)" },
      reason: { value: 'REASON', help: 'hard-bounce, complaint, unsubscribe or manual (default manual)' },
      for: { value: 'DURATION', help: 'how long it applies: 30m, 12h, 90d; or --until; without either, until removed' },
      until: { value: 'TIME', help: 'when it stops applying (RFC 3339); or --for' },
    },
    request: (v, [address]) => ({
      method: 'POST',
      path: 'v1/suppressions',
      body: { address, ...pick(v, 'reason'), ...(typeof v.tenant === 'string' ? { tenant: v.tenant === '' ? null : v.tenant } : {}), ...(typeof v.for === 'string' ? { expiresIn: v.for } : {}), ...(typeof v.until === 'string' ? { expiresAt: v.until } : {}) },
    }),
    text: (answer: { written: number; entries: SuppressionJson[] }) => addedText(answer),
  },
  'suppressions remove': {
    summary: 'Take an address off the suppression list: its mail is accepted again',
    route: 'DELETE /v1/suppressions/{address}',
    args: ['ADDRESS'],
    options: { tenant: ONE_TENANT },
    request: (v, [address]) => ({ method: 'DELETE', path: route('v1/suppressions', address!), query: pick(v, 'tenant') }),
    text: (answer: { deleted: SuppressionJson | null }, _v, [address]) => removedText(answer, address!),
  },
  'suppressions import': {
    summary: 'Import a CSV (address,reason,expires_at) or NDJSON file into the suppression list; - reads stdin',
    route: 'POST /v1/suppressions/import',
    args: ['FILE'],
    options: {
      format: { value: 'FORMAT', help: 'csv or ndjson (default: ndjson for a .ndjson or .jsonl file, else csv)' },
      tenant: { ...ONE_TENANT, help: "the list of lines that name no tenant; without it mail of no tenant (a tenant's token: its own)" },
      reason: { value: 'REASON', help: 'for lines that give none (default manual)' },
    },
    request: (v, [file]) => ({
      method: 'POST',
      path: 'v1/suppressions/import',
      query: pick(v, 'tenant', 'reason'),
      upload: { contentType: FILE_TYPES[fileFormat(v.format, file!)], data: readUpload(file!) },
      timeoutMs: BULK_TIMEOUT_MS,
    }),
    text: (answer: { lines: number; written: number }) => importedText(answer),
    problemPerLine: true,
  },
  'suppressions export': {
    summary: 'Write the suppression list to stdout as CSV or NDJSON, streamed (as import reads it)',
    route: 'GET /v1/suppressions/export',
    options: {
      format: { value: 'FORMAT', help: 'csv (default) or ndjson' },
      tenant: EVERY_TENANT,
      reason: REASON,
      since: SINCE,
      until: UNTIL,
    },
    download: true,
    request: (v) => ({ method: 'GET', path: 'v1/suppressions/export', query: pick(v, 'format', 'tenant', 'reason', 'since', 'until'), timeoutMs: BULK_TIMEOUT_MS }),
    text: () => '',
  },
};
