import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The `rookery` command. Each subcommand lives in its own module and is loaded only when used,
 * so `check-config` (systemd ExecStartPre) stays fast and works even without the daemon's
 * heavier dependencies loaded.
 */

export interface CommandContext {
  env: NodeJS.ProcessEnv;
}

/** A number is the exit code; undefined means the command keeps running (the daemon). */
export type CommandResult = number | undefined;

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  load: () => Promise<{ execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> }>;
}

const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;
const CONFIG_HELP = `  -c, --config PATH   YAML configuration file (default: $ROOKERY_CONFIG; without either, built-in defaults)`;

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'Run the daemon in the foreground until SIGTERM or SIGINT',
    usage: `Usage: rookery run [--config PATH]

Starts the daemon. The first SIGTERM or SIGINT stops it gracefully (exit 0 when done);
a second one exits at once (exit 1). An invalid configuration exits 1 before anything starts.

${CONFIG_HELP}`,
    options: CONFIG_OPTION,
    load: () => import('./run.ts'),
  },
  'check-config': {
    summary: 'Validate a configuration file and exit (0 = valid, 1 = problems listed on stderr)',
    usage: `Usage: rookery check-config [--config PATH]

Validates the configuration exactly as \`rookery run\` would, environment overrides
(DATABASE_URL, REDIS_URL) included, prints "configuration OK: PATH" and exits 0, or prints
every problem with its path (e.g. "ips[2].address: not an IP address") and exits 1.

${CONFIG_HELP}`,
    options: CONFIG_OPTION,
    load: () => import('./check-config.ts'),
  },
  'hash-password': {
    summary: 'Read a password from stdin and print its scrypt hash for smtp.users[].passwordHash',
    usage: `Usage: rookery hash-password

Reads one password from standard input (typed without echo on a terminal, or piped) and
prints its hash, ready for smtp.users[].passwordHash:

  printf '%s' 'the password' | rookery hash-password`,
    options: {},
    load: () => import('./hash-password.ts'),
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return `Usage: rookery <command> [options]

Rookery: self-hosted outbound SMTP sending engine.

Commands:
${lines.join('\n')}

Options:
  -h, --help      Show help (also: rookery <command> --help)
  -V, --version   Print the version

Exit codes: 0 success, 1 failure (invalid configuration, daemon error), 2 usage error.
`;
}

export async function main(argv: string[], context: CommandContext = { env: process.env }): Promise<CommandResult> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`rookery: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }

  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    process.stderr.write(`rookery ${name}: ${(err as Error).message}\n\n${command.usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  const module = await command.load();
  return module.execute(values, context);
}

// Run only when executed as the entry point, not when imported by tests.
if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`rookery: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
