import { writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runRookery } from '../helpers/rookery-cli.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const temp = await createTempDir('rookery-cli-ips-detect');
afterAll(() => temp.remove());

/** This machine's addresses as the command should list them, worked out here without its code. */
function expectedAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((infos) => infos ?? []);
  const kept = all.filter((info) => !info.internal && !/^(fe[89ab][0-9a-f]:|169\.254\.)/i.test(info.address));
  const v4 = kept.filter((info) => info.family === 'IPv4').map((info) => info.address);
  const v6 = kept.filter((info) => info.family === 'IPv6').map((info) => info.address.toLowerCase());
  return [...new Set([...v4, ...v6])];
}

describe('rookery ips detect on this machine', () => {
  const expected = expectedAddresses();

  it('lists the addresses of the interfaces that are up, with what DNS says of each', async () => {
    const result = await runRookery(['ips', 'detect', '--json'], {});
    if (expected.length === 0) {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('this host has no address besides loopback and link-local ones');
      return;
    }
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { addresses: Array<{ address: string; reverseDns: { status: string } }>; config: { ips: Array<{ address: string; pool: string }> } };
    expect(report.addresses.map((a) => a.address)).toEqual(expected);
    for (const ip of report.addresses) expect(['confirmed', 'unconfirmed', 'missing', 'failed']).toContain(ip.reverseDns.status);
    expect(report.config.ips.map((ip) => ip.address)).toEqual(expected);
  });

  it('prints an ips: block that rookery check-config accepts, in the pool asked for', async () => {
    const result = await runRookery(['ips', 'detect', '--pool', 'default'], {});
    if (expected.length === 0) {
      expect(result.code).toBe(1);
      return;
    }
    expect(result.code).toBe(0);
    const block = result.stdout.slice(result.stdout.indexOf('\nips:\n') + 1, result.stdout.indexOf('\n\nNext:'));
    const parsed = parse(block) as { ips: Array<{ address: string; pool: string }> };
    expect(parsed.ips.map((ip) => ip.address)).toEqual(expected);
    expect(parsed.ips.every((ip) => ip.pool === 'default')).toBe(true);
    const config = temp.file('detected.yaml');
    writeFileSync(config, block);
    const check = await runRookery(['check-config', '--config', config], {});
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
  });

  it('refuses a bad pool name and an interface that is not up', async () => {
    const pool = await runRookery(['ips', 'detect', '--pool', '1st'], {});
    expect(pool.code).toBe(2);
    expect(pool.stderr).toContain('--pool "1st": not a name');
    const iface = await runRookery(['ips', 'detect', '--interface', 'rk-none0'], {});
    expect(iface.code).toBe(1);
    expect(iface.stderr).toContain('no interface rk-none0 is up here');
  });
});
