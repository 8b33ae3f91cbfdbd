import type { ParseArgsConfig } from 'node:util';
import type { Command } from '../main.ts';
import type { ApiRequest } from './api-client.ts';
import { DEFAULT_API_URL } from './api-connection.ts';
import { API_EXIT_CODES } from './exit-codes.ts';

/**
 * The shape of a command that is one control API route: its options and arguments, the request
 * they make, and how the answer reads for a person. The options every such command shares
 * (--api, --token-file, --json; --limit, --cursor, --all for a paged listing), its usage text and
 * its entry in the command table are made from this, so a new route's command is one entry of
 * api-commands.ts.
 */

/** Option values as parsed: a string for an option with a value, true for a flag given. */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

export interface ApiOption {
  /** The value's name in the usage (`--state STATE`); absent for a flag. */
  value?: string;
  help: string;
  required?: boolean;
  /** The value must be a whole number (checked before anything is sent). */
  integer?: boolean;
}

export interface ApiCommand {
  summary: string;
  /** The route the command calls, shown in its usage: `GET /v1/queue`. */
  route: string;
  /** Arguments, all required, in order: their names in the usage. */
  args?: readonly string[];
  options?: Readonly<Record<string, ApiOption>>;
  /** A listing answered a page at a time ({items, nextCursor}): adds --limit, --cursor and --all. */
  paged?: boolean;
  /** The answer is a file, written to stdout as it arrives (`text` is not used, nor --json). */
  download?: boolean;
  request(values: OptionValues, args: readonly string[]): ApiRequest;
  /** The 2xx answer for a person; the options and arguments say what was asked (an answer may not repeat it). */
  text(body: unknown, values: OptionValues, args: readonly string[]): string;
  /** The exit code of a 2xx answer, when it is not 0 (a domain check that found errors). */
  exitCode?(body: unknown): number;
  /**
   * A refusal lists its problem's errors[] one a line below it, in place of one line: a
   * configuration's problems are many and each names its own path.
   */
  problemPerLine?: boolean;
}

/** A bad argument found before anything is sent: exit 2 with the usage. */
export class UsageError extends Error {}

/** A whole number given as `name`, as text for a query or as a number for a JSON body. */
export function wholeNumber(text: string, name: string): number {
  if (!/^-?\d{1,15}$/.test(text)) throw new UsageError(`${name} ${JSON.stringify(text)}: not a whole number`);
  return Number(text);
}

/** The given values of `names`, for a query or a body: options not given are left out. */
export function pick(values: OptionValues, ...names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((name) => (typeof values[name] === 'string' ? [[name, values[name]]] : [])));
}

/**
 * A route path with each parameter percent-encoded: `route('v1/ips', address, 'weight')`. `:` and
 * `@` may stand in a path segment as they are (RFC 3986 pchar), so an IPv6 address or a mail
 * address reaches the audit log's target as the operator typed it.
 */
export function route(...parts: string[]): string {
  return parts.map((part, i) => (i === 0 ? part : segment(part))).join('/');
}

function segment(part: string): string {
  // URL resolution drops `.` and `..` segments (encoded or not): `messages show ..` must not ask for another route.
  if (part === '' || part === '.' || part === '..') throw new UsageError(`${JSON.stringify(part)}: not a value a route can take`);
  return encodeURIComponent(part).replace(/%3A/gi, ':').replace(/%40/gi, '@');
}

const PAGE_OPTIONS: Readonly<Record<string, ApiOption>> = {
  limit: { value: 'N', help: 'entries per request (1 to 1000; the API default is 100)', integer: true },
  cursor: { value: 'CURSOR', help: 'start at this page: the nextCursor of an earlier answer' },
  all: { help: 'follow nextCursor to the last page and print every entry' },
};

const CONNECTION_OPTIONS: Readonly<Record<string, ApiOption>> = {
  api: { value: 'URL', help: `the control API (default: $ROOKERY_API_URL, else ${DEFAULT_API_URL})` },
  'token-file': { value: 'PATH', help: 'read the API token from this file (default: $ROOKERY_API_TOKEN)' },
  json: { help: "print the API's JSON answer as it came (a problem document on a refusal)" },
};

/** Every option of the command, its own first, then paging, then the connection's. */
export function allOptions(command: Pick<ApiCommand, 'options' | 'paged'>): Record<string, ApiOption> {
  return { ...command.options, ...(command.paged ? PAGE_OPTIONS : {}), ...CONNECTION_OPTIONS };
}

/** The usage text; `subcommands` are the commands whose names continue this one's (`ips` -> `ips show`, ...). */
export function apiUsage(name: string, command: ApiCommand, subcommands: ReadonlyArray<[string, ApiCommand]> = []): string {
  const options = allOptions(command);
  const required = Object.entries(options).flatMap(([option, spec]) => (spec.required ? [`--${option} ${spec.value ?? ''}`.trim()] : []));
  const synopsis = ['rookery', name, ...(command.args ?? []), ...required, '[options]'].join(' ');
  const labels = Object.entries(options).map(([option, spec]) => [`--${option}${spec.value ? ` ${spec.value}` : ''}`, spec.help] as const);
  const width = Math.max(...labels.map(([label]) => label.length));
  const list = labels.map(([label, help]) => `  ${label.padEnd(width)}  ${help}`).join('\n');
  const subWidth = Math.max(0, ...subcommands.map(([sub]) => sub.length));
  const more = subcommands.length ? `\n\nSee also:\n${subcommands.map(([sub, c]) => `  rookery ${sub.padEnd(subWidth)}  ${c.summary}`).join('\n')}` : '';
  return `Usage: ${synopsis}

${command.summary} (${command.route}).${more}

${list}

${API_EXIT_CODES}`;
}

/** The parseArgs options of the command: values stay text until the command checks them. */
export function parseOptions(command: Pick<ApiCommand, 'options' | 'paged'>): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(Object.entries(allOptions(command)).map(([option, spec]) => [option, { type: spec.value ? 'string' : 'boolean' }] as const));
}

/** The command table entries of `commands` (see main.ts), each running its route when used. */
export function apiCommandEntries(commands: Readonly<Record<string, ApiCommand>>): Record<string, Command> {
  return Object.fromEntries(
    Object.entries(commands).map(([name, command]) => [
      name,
      {
        summary: command.summary,
        usage: apiUsage(name, command, Object.entries(commands).filter(([other]) => other.startsWith(`${name} `))),
        options: parseOptions(command),
        positionals: (command.args?.length ?? 0) > 0,
        load: async () => {
          const { runApiCommand } = await import('./run-api-command.ts');
          return { execute: (values, context, positionals) => runApiCommand(name, command, values as OptionValues, context, positionals) };
        },
      } satisfies Command,
    ]),
  );
}
