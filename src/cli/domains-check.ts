import { Resolver } from 'node:dns/promises';
import { normalizeDomain } from '../mail/address.ts';
import { checkDomain, type DomainCheckConfig } from '../sender-domains/domain-check.ts';
import { formatDomainReport } from '../sender-domains/domain-check-format.ts';
import type { OptionValues } from './api/api-command.ts';
import { REMOTE_DOMAIN_CHECK } from './api/api-commands.ts';
import { runApiCommand } from './api/run-api-command.ts';
import { ConfigError, describeConfigError, loadCliConfig } from './load-cli-config.ts';
import type { CommandContext, CommandResult } from './main.ts';

/**
 * `rookery domains check D`: looks up the DNS a sender domain needs (DKIM, SPF for every egress
 * IP that sends it, DMARC, the return path) against the configuration in use, prints the report
 * (or JSON), and exits 0 when nothing is an error, 1 otherwise.
 *
 * With --remote the running daemon runs the same check with the configuration it has loaded,
 * through the control API. Only --remote switches: ROOKERY_API_URL, exported for the other API
 * commands, never turns the check of a file into the check of a daemon.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext, positionals: readonly string[] = []): Promise<CommandResult> {
  const usage = (problem: string) => {
    process.stderr.write(`rookery domains check: ${problem}\n(see rookery domains check --help)\n`);
    return 2;
  };
  if (values.remote) {
    if (values.config !== undefined) return usage('--config is for the check run here; with --remote the daemon checks with the configuration it has loaded');
    if (values.selector !== undefined) return usage('--selector is for the check run here; with --remote the daemon checks its configured selectors');
    return runApiCommand('domains check', REMOTE_DOMAIN_CHECK, values as OptionValues, context, positionals);
  }
  for (const option of ['api', 'token-file']) {
    if (values[option] !== undefined) return usage(`--${option} is for the check asked of the daemon: add --remote`);
  }
  if (positionals.length !== 1) return usage(positionals.length === 0 ? 'give the domain to check' : 'give one domain only');
  const [given = ''] = positionals;
  const domain = normalizeDomain(given);
  if (!domain) return usage(`${JSON.stringify(given)} is not a domain name`);
  const selectors = (values.selector as string[] | undefined) ?? [];

  let config: DomainCheckConfig;
  try {
    config = loadCliConfig(values, context.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }

  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  const report = await checkDomain({ domain, config, resolver, selectors });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDomainReport(report));
  return report.status === 'error' ? 1 : 0;
}
