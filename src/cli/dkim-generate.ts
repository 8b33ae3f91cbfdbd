import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { normalizeDomain } from '../mail/address.ts';
import { dkimRecordName, dkimTxtValue, zoneFileLine } from '../sender-domains/dns-record.ts';
import { DKIM_ALGORITHMS, dkimKeyPath, generateDkimKey, KeyFileExistsError, selectorProblem, writePrivateKeyFile, type DkimAlgorithm } from '../sender-domains/key-generation.ts';
import { ConfigError, describeConfigError, loadCliConfig } from './load-cli-config.ts';
import type { CommandContext, CommandResult } from './main.ts';

/**
 * `rookery dkim generate`: makes a signing key, writes its private half where the daemon will
 * read it, and prints what the operator does next: the DNS record to publish and the lines to
 * add to the configuration.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  const usage = (problem: string) => {
    process.stderr.write(`rookery dkim generate: ${problem}\n(see rookery dkim generate --help)\n`);
    return 2;
  };
  const given = values as { domain?: string; selector?: string; algorithm?: string; bits?: string; dir?: string; force?: boolean; json?: boolean };
  if (given.domain === undefined) return usage('--domain is required');
  if (given.selector === undefined) return usage('--selector is required');
  const domain = normalizeDomain(given.domain);
  if (!domain) return usage(`--domain ${JSON.stringify(given.domain)}: not a domain name`);
  const selector = given.selector.toLowerCase();
  const badSelector = selectorProblem(selector);
  if (badSelector) return usage(`--selector ${JSON.stringify(given.selector)}: ${badSelector}`);
  const algorithm = (given.algorithm ?? 'rsa-sha256') as DkimAlgorithm;
  if (!DKIM_ALGORITHMS.includes(algorithm)) return usage(`--algorithm must be one of ${DKIM_ALGORITHMS.join(', ')}`);
  let bits: number | undefined;
  if (given.bits !== undefined) {
    if (algorithm !== 'rsa-sha256') return usage('--bits applies to rsa-sha256 keys only');
    if (!/^\d+$/.test(given.bits)) return usage(`--bits ${JSON.stringify(given.bits)}: not a number`);
    bits = Number(given.bits);
  }

  let dir = given.dir;
  if (dir === undefined) {
    // Only the data directory is needed, but a configuration that cannot be used is still an error.
    try {
      dir = join(loadCliConfig(values, context.env).dataDir, 'dkim');
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(describeConfigError(err));
      return 1;
    }
  }
  const path = resolve(dkimKeyPath(dir, domain, selector));

  let key;
  try {
    key = await generateDkimKey({ algorithm, ...(bits === undefined ? {} : { bits }) });
  } catch (err) {
    if (err instanceof RangeError) return usage(err.message);
    throw err;
  }
  try {
    await writePrivateKeyFile(path, key.privateKeyPem, { force: given.force === true });
  } catch (err) {
    if (!(err instanceof KeyFileExistsError)) throw err;
    process.stderr.write(
      `rookery dkim generate: ${path} already exists; nothing was written.\n` +
        `Choose another selector for a new key (rotation), or pass --force to replace this one: ` +
        `the DNS record published for the old key then no longer verifies.\n`,
    );
    return 1;
  }

  const name = dkimRecordName(selector, domain);
  const value = dkimTxtValue(key.publicKey);
  const config = { dkim: { domains: { [domain]: { keys: [{ selector, privateKey: path }] } } } };
  if (given.json) {
    const output = {
      domain,
      selector,
      algorithm,
      bits: key.bits,
      privateKeyPath: path,
      dns: { name: `${name}.`, type: 'TXT', value, zoneFile: zoneFileLine(name, value) },
      config,
    };
    process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
    return 0;
  }
  const size = key.bits === null ? 'Ed25519' : `RSA-${key.bits}`;
  process.stdout.write(
    [
      `Wrote the ${size} private key for ${domain}, selector ${selector}: ${path}`,
      '',
      'Publish this DNS TXT record:',
      `  name:  ${name}.`,
      `  value: ${value}`,
      '',
      'or, in a zone file (strings of at most 255 bytes):',
      zoneFileLine(name, value),
      '',
      `Add the key to the configuration (append to dkim.domains.${domain}.keys if the domain is listed already):`,
      stringify(config).trimEnd(),
      '',
      `Once the record is published: rookery domains check ${domain}`,
      '',
    ].join('\n'),
  );
  return 0;
}
