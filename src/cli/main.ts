import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { maskCredentials } from '../observability/mask-credentials.ts';
import { apiCommandEntries, parseOptions } from './api/api-command.ts';
import { API_COMMANDS, REMOTE_DOMAIN_CHECK } from './api/api-commands.ts';

/**
 * The `rookery` command. Each subcommand lives in its own module and is loaded only when used,
 * so `check-config` (systemd ExecStartPre) stays fast and works even without the daemon's
 * heavier dependencies loaded. The table of API commands (api/api-commands.ts) is read at start
 * for their names and usage; it holds only option lists and text formatting, and the code that
 * talks to the API loads when one of them runs.
 */

export interface CommandContext {
  env: NodeJS.ProcessEnv;
}

/** A number is the exit code; undefined means the command keeps running (the daemon). */
export type CommandResult = number | undefined;

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Whether the command takes arguments besides options (handed to execute as positionals). */
  positionals?: boolean;
  load: () => Promise<{
    execute(values: Record<string, unknown>, context: CommandContext, positionals: readonly string[]): Promise<CommandResult>;
  }>;
}

const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;
const CONFIG_HELP = `  -c, --config PATH   YAML configuration file (default: $ROOKERY_CONFIG; without either, built-in defaults)`;

/** The commands that run here; those that call the control API follow (api/api-commands.ts). */
const LOCAL_COMMANDS: Record<string, Command> = {
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
(DATABASE_URL, REDIS_URL, ROOKERY_VERP_SECRET, ROOKERY_UNSUBSCRIBE_SECRET) and the files it
names (DKIM keys, TLS key and certificate) included, without starting or writing anything.
Prints "configuration OK: PATH" and exits 0, or prints every problem with its path (e.g.
"ips[2].address: not an IP address") and exits 1.

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
  'token create': {
    summary: 'Make an API token and print it once, with the api.tokens entry holding its hash',
    usage: `Usage: rookery token create --name NAME --role ROLE [--tenant TENANT] [--json]

Makes a new random API token and prints it once, with the entry to add under api.tokens in the
configuration. The configuration holds only the token's SHA-256 hash; the token itself is not
stored anywhere, so copy it now. Callers send it as "Authorization: Bearer TOKEN".

  --name NAME       the token's name, shown in logs and by GET /v1/whoami (unique in api.tokens)
  --role ROLE       admin, operator, sender or viewer
  --tenant TENANT   the tenant the token acts for (required for sender, refused for admin)
  --json            print {"token": ..., "entry": {...}} instead`,
    options: { name: { type: 'string' }, role: { type: 'string' }, tenant: { type: 'string' }, json: { type: 'boolean' } },
    load: () => import('./token-create.ts'),
  },
  'dkim generate': {
    summary: 'Create a DKIM signing key and print the DNS record to publish',
    usage: `Usage: rookery dkim generate --domain DOMAIN --selector SELECTOR [options]

Writes a new private key to DIR/DOMAIN.SELECTOR.pem (readable by its owner only) and prints
the DNS TXT record SELECTOR._domainkey.DOMAIN to publish, and the lines to add under
dkim.domains in the configuration. An existing key file is never replaced without --force.

  --domain DOMAIN       the signing domain (d=)
  --selector SELECTOR   the selector (s=), e.g. s2025; a new selector for each new key
  --algorithm ALG       rsa-sha256 (default) or ed25519-sha256
  --bits N              RSA key size, 1024 to 4096 (default 2048)
  --dir DIR             where to write the key (default: <dataDir>/dkim of the configuration)
  --force               replace an existing key file
  --json                print the result as JSON
${CONFIG_HELP}`,
    options: {
      ...CONFIG_OPTION,
      domain: { type: 'string' },
      selector: { type: 'string' },
      algorithm: { type: 'string' },
      bits: { type: 'string' },
      dir: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    load: () => import('./dkim-generate.ts'),
  },
  'domains check': {
    summary: "Check a sender domain's DNS: DKIM, SPF for every egress IP, DMARC, return path",
    usage: `Usage: rookery domains check DOMAIN [--selector S]... [--json] [--config PATH]
       rookery domains check DOMAIN --remote [--api URL] [--token-file PATH] [--json]

Looks up, with the configuration in use: the DKIM record of each configured selector and
whether it matches the key file; SPF evaluated for every egress IP that sends DOMAIN's mail;
the DMARC policy and alignment; whether bounces can reach the return-path domain. Prints one
line per check (✓ ok, ! warning, ✗ error) with the fix. Exit 0 when nothing is an error, 1 otherwise.

The check runs here, from the configuration file, unless --remote is given: then the running
daemon runs it with the configuration it has loaded (${REMOTE_DOMAIN_CHECK.route}), through the
control API, as the other API commands do (see rookery domains --help); a refusal exits 3 and
no usable answer 4.

  --selector S        also look for this selector (presence only when no configured key uses it)
  --json              print the report as JSON
  --remote            ask the running daemon to check (needs an operator or admin token)
  --api URL           with --remote: the control API (default: $ROOKERY_API_URL, else http://127.0.0.1:8025)
  --token-file PATH   with --remote: read the API token from this file (default: $ROOKERY_API_TOKEN)
${CONFIG_HELP}`,
    options: { ...CONFIG_OPTION, ...parseOptions(REMOTE_DOMAIN_CHECK), selector: { type: 'string', multiple: true }, remote: { type: 'boolean' } },
    positionals: true,
    load: () => import('./domains-check.ts'),
  },
  'ips detect': {
    summary: "List this host's addresses with their PTR names, and print an ips: block for them",
    usage: `Usage: rookery ips detect [--pool NAME] [--interface IF]... [--json]

Lists the IPv4 and IPv6 addresses of the interfaces that are up, loopback and link-local ones
left out, private ones (RFC 1918, CGNAT, IPv6 unique local) marked. For each it looks up the PTR
record and whether the PTR name resolves back to the address (forward-confirmed reverse DNS,
which receivers check against the HELO name). Then it prints an ips: block for the
configuration, hostname set to each PTR name, with a comment on every address whose PTR is
missing or does not resolve back. Reads the interfaces and DNS only; changes nothing.

  --pool NAME       the pool of every entry (default: default)
  --interface IF    only the addresses of this interface (repeat for more)
  --json            print {"addresses": [...], "config": {"ips": [...]}} instead`,
    options: { pool: { type: 'string' }, interface: { type: 'string', multiple: true }, json: { type: 'boolean' } },
    load: () => import('./ips-detect.ts'),
  },
  backup: {
    summary: 'Copy the SQLite queue to a file, consistently, while the daemon runs',
    usage: `Usage: rookery backup --to FILE [--force] [--json] [--config PATH]

Writes a consistent copy of the SQLite store (storage.path of the configuration, relative to
the current directory as it is for the daemon) to FILE, while the daemon goes on accepting and
delivering: one read transaction of SQLite's VACUUM INTO, which never blocks the daemon's
writes. The copy is written beside FILE under a temporary name, readable by its owner only,
checked (PRAGMA integrity_check, schema version) and synced, then renamed to FILE. An existing
FILE is never replaced without --force. Prints what it wrote: size, schema version, messages,
recipients by state.

To restore: stop the daemon, put the copy at storage.path, start it (same hostname, so it takes
back the deliveries that were in flight).

A PostgreSQL store is backed up with pg_dump instead (the command says how and exits 1).

  --to FILE   where to write the copy (its directory must exist)
  --force     replace FILE if it exists
  --json      print the result as JSON
${CONFIG_HELP}`,
    options: { ...CONFIG_OPTION, to: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } },
    load: () => import('./backup.ts'),
  },
};

const COMMANDS: Record<string, Command> = { ...LOCAL_COMMANDS, ...apiCommandEntries(API_COMMANDS) };

/** Command names have up to this many words (`ips weight set`). */
const MAX_WORDS = 3;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const list = (commands: Record<string, Command>) => Object.entries(commands).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`).join('\n');
  return `Usage: rookery <command> [options]

Rookery: self-hosted outbound SMTP sending engine.

Commands:
${list(LOCAL_COMMANDS)}

Commands that call the control API (--api URL or $ROOKERY_API_URL, token in $ROOKERY_API_TOKEN
or --token-file PATH; --json prints the API's answer as it came):
${list(apiCommandEntries(API_COMMANDS))}

Options:
  -h, --help      Show help (also: rookery <command> --help)
  -V, --version   Print the version

Exit codes: 0 success, 1 failure (invalid configuration, daemon error, no API token), 2 usage error,
3 the control API refused the request (4xx), 4 no usable answer from it (5xx, unreachable).
`;
}

/** The command named by the first words of argv, the longest name first (`ips weight set` before `ips`). */
function findCommand(argv: readonly string[]): { name: string; command: Command; args: string[] } | undefined {
  for (let words = Math.min(MAX_WORDS, argv.length); words > 0; words--) {
    const name = argv.slice(0, words).join(' ');
    if (Object.hasOwn(COMMANDS, name)) return { name, command: COMMANDS[name]!, args: argv.slice(words) };
  }
  return undefined;
}

/** The commands whose names continue `prefix` with more words. */
function subcommandsOf(prefix: string): string[] {
  return Object.keys(COMMANDS).filter((n) => n.startsWith(`${prefix} `));
}

export async function main(argv: string[], context: CommandContext = { env: process.env }): Promise<CommandResult> {
  const [name] = argv;
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
  const found = findCommand(argv);
  if (!found) {
    const what = subcommandsOf(name).length > 0 ? `unknown or missing subcommand of "${name}"` : `unknown command "${name}"`;
    process.stderr.write(`rookery: ${what}\n\n${usage()}`);
    return 2;
  }
  const { name: commandName, command, args } = found;
  // `rookery ips bogus`: a word where a command of more words was meant, not an argument.
  const [word] = args;
  if (!command.positionals && word !== undefined && !word.startsWith('-') && subcommandsOf(commandName).length > 0) {
    const longer = `${commandName} ${word}`;
    const what = subcommandsOf(longer).length > 0 ? `missing subcommand of "${longer}"` : `unknown subcommand "${longer}"`;
    const prefix = subcommandsOf(longer).length > 0 ? longer : commandName;
    const list = subcommandsOf(prefix).map((n) => `  rookery ${n.padEnd(20)}  ${COMMANDS[n]!.summary}`);
    process.stderr.write(`rookery: ${what}; one of:\n${list.join('\n')}\n`);
    return 2;
  }

  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: command.positionals === true,
    }));
  } catch (err) {
    process.stderr.write(`rookery ${commandName}: ${(err as Error).message}\n\n${command.usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  const module = await command.load();
  return module.execute(values, context, positionals);
}

// Run only when executed as the entry point, not when imported by tests.
if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (err: unknown) => {
      // A driver's error may quote a connection string.
      process.stderr.write(`rookery: ${maskCredentials((err as Error).stack ?? String(err))}\n`);
      process.exitCode = 1;
    },
  );
}
