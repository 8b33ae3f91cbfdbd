import type { CommandContext, CommandResult } from '../main.ts';
import { ApiFailure, ApiRefusal, callApi, downloadApi, type ApiAnswer, type ApiRequest } from './api-client.ts';
import { allOptions, UsageError, wholeNumber, type ApiCommand, type OptionValues } from './api-command.ts';
import { ConnectionSetupError, resolveConnection, type ApiConnection } from './api-connection.ts';
import { EXIT } from './exit-codes.ts';
import { problemLines } from './problem-line.ts';
import { clean } from './text-table.ts';

/**
 * Runs one API command: checks its arguments (exit 2), finds the API and the token (exit 1),
 * sends the request (a paged listing's --all follows nextCursor to the last page) and prints the
 * answer for a person, or as the API's JSON with --json (a file, such as an export, as it comes).
 * A refusal (4xx) exits 3 and no usable answer exits 4, each with one line on stderr (a refusal
 * of a command with problemPerLine: and a line for each of its errors); with --json the problem
 * document is printed too.
 */
export async function runApiCommand(name: string, command: ApiCommand, values: OptionValues, context: CommandContext, positionals: readonly string[]): Promise<CommandResult> {
  const say = (line: string) => process.stderr.write(`rookery ${name}: ${clean(line)}\n`);
  const usage = (problem: string) => {
    say(problem);
    process.stderr.write(`(see rookery ${name} --help)\n`);
    return EXIT.usage;
  };

  const args = command.args ?? [];
  if (positionals.length < args.length) return usage(`give ${args.slice(positionals.length).join(' ')}`);
  if (positionals.length > args.length) return usage(`unexpected argument ${JSON.stringify(positionals[args.length])}`);
  let request: ApiRequest;
  try {
    for (const [option, spec] of Object.entries(allOptions(command))) {
      const value = values[option];
      if (spec.required && value === undefined) throw new UsageError(`--${option} is required`);
      if (spec.integer && typeof value === 'string') wholeNumber(value, `--${option}`);
    }
    request = command.request(values, positionals);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }

  let connection: ApiConnection;
  try {
    connection = resolveConnection(values, context.env);
  } catch (err) {
    if (!(err instanceof ConnectionSetupError)) throw err;
    say(err.message);
    return EXIT.failure;
  }

  try {
    if (command.download) {
      await downloadApi(connection, request, process.stdout);
      return EXIT.ok;
    }
    const { answer, more } = command.paged ? await fetchPages(connection, request, values) : { answer: await callApi(connection, request), more: null };
    if (values.json) {
      process.stdout.write(answer.text.endsWith('\n') ? answer.text : `${answer.text}\n`);
    } else {
      process.stdout.write(command.text(answer.body, values, positionals));
      if (more) process.stderr.write(`(more: add --cursor ${more}, or --all for every page)\n`);
    }
    return command.exitCode?.(answer.body) ?? EXIT.ok;
  } catch (err) {
    if (!(err instanceof ApiRefusal) && !(err instanceof ApiFailure)) throw err;
    if (values.json && err.text !== null) process.stdout.write(`${err.text.trimEnd()}\n`);
    if (command.problemPerLine && err instanceof ApiRefusal && err.problem) {
      const [head, ...entries] = problemLines(err.problem);
      say(head!);
      for (const entry of entries) process.stderr.write(`  ${entry}\n`);
    } else {
      say(err.message);
    }
    return err instanceof ApiRefusal ? EXIT.refused : EXIT.unavailable;
  }
}

interface Page {
  items: unknown[];
  nextCursor: string | null;
}

/**
 * One page (from --cursor, of --limit entries), or with --all every page from there on, as one
 * answer {items, nextCursor: null}; `more` is the cursor of the page after the one shown.
 */
async function fetchPages(connection: ApiConnection, request: ApiRequest, values: OptionValues): Promise<{ answer: ApiAnswer; more: string | null }> {
  const page = (cursor: string | undefined) => callApi(connection, { ...request, query: { ...request.query, limit: values.limit as string | undefined, cursor } });
  const first = await page(values.cursor as string | undefined);
  if (!values.all) return { answer: first, more: (first.body as Page).nextCursor };
  const items = [...(first.body as Page).items];
  let next = (first.body as Page).nextCursor;
  while (next !== null) {
    const body = (await page(next)).body as Page;
    items.push(...body.items);
    // A cursor that does not move would be followed for ever.
    if (body.nextCursor === next) throw new ApiFailure(`the API answered the same nextCursor twice: ${next}`);
    next = body.nextCursor;
  }
  const body: Page = { items, nextCursor: null };
  return { answer: { status: first.status, text: JSON.stringify(body), body }, more: null };
}
