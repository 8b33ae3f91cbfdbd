import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { ipListText, ipText, type IpJson } from '../../src/cli/api/ips-text.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The blocklist watch in a daemon: started with it, looking up the configured egress IPs through
 * the daemon's resolver, its finding in GET /v1/ips, `rookery ips show` and /metrics.
 */

const token = generateApiToken();
const IP = '11.22.33.44';
const TXT = 'Listed by SBL, see https://check.spamhaus.org/';

describe('blocklist watch in the daemon', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: Daemon | null = null;

  afterEach(async () => {
    await daemon?.stop();
    daemon = null;
    await sink.close();
    await dir.remove();
  });

  it('looks up its egress IPs at start and shows a listing in GET /v1/ips, the CLI text and /metrics', async () => {
    dir = await createTempDir('rookery-blocklist');
    sink = await startSmtpSink();
    const resolver = createFixtureResolver({ '44.33.22.11.dqs-key.zen.test': { a: ['127.0.0.2'], txt: [TXT] } });
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver,
      config: {
        api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'ops', role: 'viewer', hash: hashApiToken(token) }] },
        ips: [{ address: '127.0.0.2' }, { address: IP }],
        blocklists: { lists: [{ name: 'zen', zone: 'dqs-key.zen.test', reaction: { action: 'suspend', providers: ['all'] } }] },
      },
    });
    const { host, port } = daemon.apiAddress();
    const get = (path: string) => fetch(`http://${host}:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
    await until(async () => (await (await get('/metrics')).text()).includes(`rookery_ip_blocklisted{egress_ip="${IP}",list="zen"} 1`), 'the listing in /metrics');
    expect(await (await get('/metrics')).text()).toContain(`rookery_ip_restricted{egress_ip="${IP}",provider="*",action="suspend",reason="blocklist:zen"} 1`);
    // The loopback address is never looked up.
    expect(resolver.queries).toEqual(['A 44.33.22.11.dqs-key.zen.test', 'TXT 44.33.22.11.dqs-key.zen.test']);

    const ip = (await (await get(`/v1/ips/${IP}`)).json()) as IpJson & { blocklists: Array<Record<string, unknown>> };
    expect(ip.blocklists).toEqual([
      { list: 'zen', listed: true, codes: ['127.0.0.2'], reason: TXT, firstListedAt: expect.any(String), lastCheckedAt: expect.any(String), lastError: null },
    ]);
    expect(ip.restrictions).toMatchObject([{ scope: 'all', action: 'suspend', rule: 'blocklist:zen', reason: `listed on zen (127.0.0.2): ${TXT}` }]);
    const loopback = (await (await get('/v1/ips/127.0.0.2')).json()) as { blocklists: unknown[] };
    expect(loopback.blocklists).toEqual([]);

    const text = ipText(ip);
    expect(text).toMatch(/BLOCKLIST\s+LISTED\s+SINCE\s+CHECKED\s+LAST ERROR\s+REASON/);
    expect(text).toMatch(new RegExp(`zen\\s+yes \\(127\\.0\\.0\\.2\\)\\s+.*\\s+-\\s+${TXT.replaceAll('.', '\\.')}`));
    expect(text).toMatch(/suspend\s+all\s+.*blocklist:zen/);
    const rows = ipListText((await (await get('/v1/ips')).json()) as { ips: IpJson[] }).split('\n');
    expect(rows[0]).toMatch(/RESTRICTED\s+BLOCKLISTED/);
    expect(rows.find((row) => row.startsWith(IP))).toMatch(/suspend all\s+zen\s/);
    expect(rows.find((row) => row.startsWith('127.0.0.2'))).toMatch(/-\s+-\s/);
    // The zone, which holds the key, is shown nowhere.
    expect(JSON.stringify(ip)).not.toContain('dqs-key');
  });
});
