import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

/** Parses with no environment overrides, so the machine's DATABASE_URL cannot leak in. */
function parse(raw: unknown, env: NodeJS.ProcessEnv = {}) {
  return parseConfig(raw, 'test', env);
}

/** The problems a config raises; fails the test when it is accepted. */
function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parse(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('configuration was accepted');
}

const temp = await createTempDir('rookery-config');
const dir = temp.path;
afterAll(() => temp.remove());

function writeYaml(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('defaults', () => {
  it('an empty config is the embedded single-node setup', () => {
    const config = parse({});
    expect(config.hostname).toBe(hostname());
    expect(config.dataDir).toBe('./data');
    expect(config.storage).toEqual({ driver: 'sqlite', path: './data/rookery.db', retention: 7 * 86_400_000 });
    expect(config.redis).toBeUndefined();
    expect(config.smtp.listeners).toEqual([{ host: '127.0.0.1', port: 2525, tls: 'none', greetingDelay: 0 }]);
    expect(config.smtp.trustedNetworks).toEqual([]);
    expect(config.smtp.users).toEqual([]);
    expect(config.smtp.maxMessageBytes).toBe(26_214_400);
    expect(config.smtp.sessionTimeout).toBe(600_000);
    expect(config.smtp.authFailures).toEqual({ max: 5, window: 900_000 });
    expect(config.api.listen).toEqual({ host: '127.0.0.1', port: 8025 });
    expect(config.delivery.routes).toEqual({ '*': 'mx' });
    expect(config.delivery.maxAge).toBe(5 * 86_400_000);
    expect(config.delivery.mxPort).toBe(25);
    expect(config.delivery.retry).toEqual({ initial: 60_000, max: 14_400_000, multiplier: 2, jitter: 0.2 });
    expect(config.delivery.timeouts).toEqual({ connect: 30_000, greeting: 300_000, command: 300_000, dataDone: 600_000 });
    expect(config.delivery.shutdownTimeout).toBe(25_000);
    expect(config.delivery.lease).toBe(60_000);
    expect(config.delivery.dsn).toEqual({ enabled: true });
    expect(config.ips).toEqual([]);
    expect(config.log.level).toBe('info');
  });

  it('null (an empty YAML file) means all defaults too', () => {
    expect(parse(null)).toEqual(parse({}));
  });

  it('fills defaults inside list items and next to given values', () => {
    const config = parse({ smtp: { listeners: [{ port: 587 }] }, delivery: { retry: { initial: '30s' } } });
    expect(config.smtp.listeners).toEqual([{ host: '127.0.0.1', port: 587, tls: 'none', greetingDelay: 0 }]);
    expect(config.delivery.retry).toEqual({ initial: 30_000, max: 14_400_000, multiplier: 2, jitter: 0.2 });
  });

  it('durations accept every unit and plain milliseconds', () => {
    const config = parse({ delivery: { retry: { initial: '500ms', max: '2h' }, maxAge: '5d', timeouts: { connect: '1m', greeting: 1500 } } });
    expect(config.delivery.retry.initial).toBe(500);
    expect(config.delivery.retry.max).toBe(7_200_000);
    expect(config.delivery.maxAge).toBe(432_000_000);
    expect(config.delivery.timeouts.connect).toBe(60_000);
    expect(config.delivery.timeouts.greeting).toBe(1500);
  });
});

describe('problems name their exact path', () => {
  it('rejects unknown keys at any depth', () => {
    expect(problemsOf({ smtp: { listners: [] } })).toEqual(['smtp.listners: unknown key']);
    expect(problemsOf({ smtp: { listeners: [{ port: 25, tsl: 'none' }] } })).toEqual(['smtp.listeners[0].tsl: unknown key']);
    expect(problemsOf({ colour: 'blue' })).toEqual(['colour: unknown key']);
  });

  it('reports a bad egress address by its index', () => {
    const problems = problemsOf({ ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }, { address: '127.0.0.300' }] });
    expect(problems).toEqual(['ips[2].address: not an IP address']);
  });

  it('rejects a bad duration with the value it got', () => {
    const problems = problemsOf({ delivery: { retry: { initial: '10 minutes' } } });
    expect(problems).toEqual(['delivery.retry.initial: not a duration (use e.g. 500ms, 25s, 10m, 1h, 5d): "10 minutes"']);
    expect(problemsOf({ delivery: { shutdownTimeout: -5 } })[0]).toMatch(/^delivery\.shutdownTimeout: not a duration/);
  });

  it('takes webhook settings with their defaults, and names a bad one by its path', () => {
    expect(parse({}).webhooks).toEqual({ enabled: true, concurrency: 8, timeout: 10_000, retention: 7 * 86_400_000, allowPrivateNetworks: false, maxEndpointsPerTenant: 10 });
    expect(parse({ webhooks: { timeout: '2s', allowPrivateNetworks: true } }).webhooks).toMatchObject({ timeout: 2_000, allowPrivateNetworks: true });
    expect(problemsOf({ webhooks: { timeout: '2m', concurrency: 0, secret: 'x' } })).toEqual([
      'webhooks.concurrency: Too small: expected number to be >=1',
      'webhooks.timeout: at most 60s',
      'webhooks.secret: unknown key',
    ]);
  });

  it('takes a delivery lease of at least 3s', () => {
    expect(parse({ delivery: { lease: '3s' } }).delivery.lease).toBe(3_000);
    expect(problemsOf({ delivery: { lease: '2s' } })).toEqual(['delivery.lease: at least 3s (a lease is renewed every third of it)']);
    expect(problemsOf({ delivery: { lease: 'soon' } })[0]).toMatch(/^delivery\.lease: not a duration/);
  });

  it('takes the outbound TLS mode, per-domain modes, MTA-STS and TLS reporting, with defaults', () => {
    expect(parse({}).delivery).toMatchObject({
      tls: 'opportunistic',
      tlsPolicies: {},
      mtaSts: { enabled: true, fetchTimeout: 10_000, recheck: 300_000, allowPrivateNetworks: false },
      tlsReports: { enabled: true, pool: 'default', allowPrivateNetworks: false },
    });
    const delivery = parse({
      delivery: { tls: 'required', tlsPolicies: { 'bank.example': 'verify', '.health.example': 'required', '*': 'opportunistic' }, tlsReports: { organization: 'Example', contact: 'tls@example.com', from: 'tlsrpt@example.com' } },
    }).delivery;
    expect(delivery).toMatchObject({ tls: 'required', tlsPolicies: { 'bank.example': 'verify' }, tlsReports: { organization: 'Example', contact: 'tls@example.com' } });
    expect(problemsOf({ delivery: { tls: 'strict', tlsPolicies: { 'bank.example': 'dane' }, mtaSts: { fetchTimeout: '2m', cache: true }, tlsReports: { from: 'nobody' } } })).toEqual([
      expect.stringMatching(/^delivery\.tls: Invalid option: expected one of "opportunistic"\|"required"\|"verify"/),
      expect.stringMatching(/^delivery\.tlsPolicies\.bank\.example: Invalid option/),
      'delivery.mtaSts.fetchTimeout: at most 60s',
      'delivery.mtaSts.cache: unknown key',
      'delivery.tlsReports.from: not an email address',
    ]);
    expect(problemsOf({ delivery: { tlsPolicies: { 'bad domain': 'verify', '.ok.example': 'verify' } } })).toEqual(['delivery.tlsPolicies.bad domain: not a domain, ".parent.domain" or "*"']);
  });

  it('takes dead-site probe intervals, the longest no shorter than the first', () => {
    expect(parse({}).delivery.deadSite).toEqual({ interval: 60_000, maxInterval: 600_000 });
    expect(parse({ delivery: { deadSite: { interval: '30s', maxInterval: '30s' } } }).delivery.deadSite).toEqual({ interval: 30_000, maxInterval: 30_000 });
    expect(problemsOf({ delivery: { deadSite: { interval: '5m', maxInterval: '1m' } } })).toEqual(['delivery.deadSite.maxInterval: maxInterval is shorter than interval']);
    expect(problemsOf({ delivery: { deadSite: { interval: '0s' } } })[0]).toMatch(/^delivery\.deadSite\.interval: /);
    // Probes rarer than the review of a hold would leave a held site unprobed between reviews.
    expect(problemsOf({ delivery: { deadSite: { maxInterval: '2h' } } })).toEqual(['delivery.deadSite.maxInterval: at most 30m (a held site is reviewed every half hour)']);
    expect(parse({ delivery: { deadSite: { maxInterval: '30m' } } }).delivery.deadSite.maxInterval).toBe(1_800_000);
  });

  it('takes maxBufferedBytes no smaller than maxMessageBytes', () => {
    expect(parse({ smtp: { maxMessageBytes: 1_000, maxBufferedBytes: 1_000 } }).smtp.maxBufferedBytes).toBe(1_000);
    const problem = 'smtp.maxBufferedBytes: less than maxMessageBytes: a message of the largest size accepted could never be received';
    expect(problemsOf({ smtp: { maxBufferedBytes: 100_000 } })).toEqual([problem]);
    expect(problemsOf({ smtp: { maxMessageBytes: 2_000, maxBufferedBytes: 1_999 } })).toEqual([problem]);
  });

  it('rejects networks that are not CIDR', () => {
    const message = 'not a network in CIDR form (e.g. 10.0.0.0/8)';
    expect(problemsOf({ smtp: { trustedNetworks: ['10.0.0.0/8', '10.0.0.0/33'] } })).toEqual([`smtp.trustedNetworks[1]: ${message}`]);
    expect(problemsOf({ smtp: { trustedNetworks: ['example.com/24'] } })).toEqual([`smtp.trustedNetworks[0]: ${message}`]);
    expect(problemsOf({ smtp: { trustedNetworks: ['::1/129'] } })).toEqual([`smtp.trustedNetworks[0]: ${message}`]);
    expect(parse({ smtp: { trustedNetworks: ['192.168.1.7', '::1/128', '0.0.0.0/0'] } }).smtp.trustedNetworks).toHaveLength(3);
  });

  it('reports every problem at once, not only the first', () => {
    const problems = problemsOf({ api: { listen: { port: 70000 } }, log: { level: 'loud' }, delivery: { routes: { 'example.com': 'smtp://x' } } });
    expect(problems.map((p) => p.split(':')[0])).toEqual(['api.listen.port', 'delivery.routes.example.com', 'log.level']);
  });

  it('requires a URL for PostgreSQL', () => {
    expect(problemsOf({ storage: { driver: 'postgres' } })).toEqual([
      'storage.url: required when storage.driver is postgres (or set DATABASE_URL)',
    ]);
  });

  it('rejects a user with both or neither of password and passwordHash, and a hash that is not scrypt', () => {
    expect(problemsOf({ smtp: { users: [{ username: 'a', allowedSenders: ['*'] }] } })).toEqual(['smtp.users[0]: give exactly one of password or passwordHash']);
    expect(problemsOf({ smtp: { users: [{ username: 'a', password: 'x', passwordHash: 'scrypt$x', allowedSenders: ['*'] }] } })).toEqual([
      'smtp.users[0]: give exactly one of password or passwordHash',
    ]);
    expect(problemsOf({ smtp: { users: [{ username: 'a', passwordHash: '$2b$10$abc', allowedSenders: ['*'] }] } })[0]).toMatch(/^smtp\.users\[0\]\.passwordHash: not an scrypt hash/);
  });

  it('requires allowedSenders of every user: "*" only when written', () => {
    const users = [
      { username: 'app', password: 'x', allowedSenders: ['*@app.example'] },
      { username: 'any', password: 'y' },
    ];
    expect(problemsOf({ smtp: { users } })).toEqual([
      'smtp.users[1].allowedSenders: required: the envelope senders this user may use (addresses, "*@domain", or "*" for any)',
    ]);
    const written = parse({ smtp: { users: [users[0], { ...users[1], allowedSenders: ['*'] }] } });
    expect(written.smtp.users.map((u) => u.allowedSenders)).toEqual([['*@app.example'], ['*']]);
  });

  it('rejects the same egress address twice, however it is spelled', () => {
    expect(problemsOf({ ips: [{ address: '127.0.0.2' }, { address: '127.0.0.2' }] })).toEqual(['ips[1].address: duplicate address 127.0.0.2 (also ips[0].address)']);
    expect(problemsOf({ ips: [{ address: '::7' }, { address: '127.0.0.2' }, { address: '0:0::7' }] })).toEqual([
      'ips[2].address: duplicate address ::7 (also ips[0].address)',
    ]);
  });

  it('keeps every egress address in one spelling: IPv6 compressed and lower-case', () => {
    const config = parse({ ips: [{ address: '2001:DB8:0:0::7' }, { address: '127.0.0.2' }, { address: 'FE80:0::1%eth0' }] });
    expect(config.ips.map((ip) => ip.address)).toEqual(['2001:db8::7', '127.0.0.2', 'fe80::1%eth0']);
    expect(problemsOf({ ips: [{ address: '2001:db8::zz' }] })).toEqual(['ips[0].address: not an IP address']);
  });

  it('rejects addresses of the wrong kind for PostgreSQL and Redis, and takes every form their clients take', () => {
    expect(problemsOf({ storage: { driver: 'postgres', url: 'db.internal/rookery' } })).toEqual([
      'storage.url: not a postgres:// URL (postgres://user:password@host:5432/database)',
    ]);
    expect(problemsOf({ storage: { driver: 'postgres', url: 'mysql://u:secret@db/x' } })).toEqual([
      'storage.url: not a postgres:// URL (postgres://user:password@host:5432/database)',
    ]);
    const redisProblem = 'redis.url: not a Redis address (redis://host:6379, rediss://..., host:port or a socket path)';
    expect(problemsOf({ redis: { url: 'http://cache:6379' } })).toEqual([redisProblem]);
    expect(problemsOf({ redis: { url: 'cache 6379' } })).toEqual([redisProblem]);
    expect(parse({ storage: { driver: 'postgres', url: 'postgresql://db.internal/rookery' }, redis: { url: 'rediss://cache:6380' } }).redis!.url).toBe('rediss://cache:6380');
    for (const url of ['localhost:6379', '127.0.0.1', '[::1]:6379', '/run/redis/redis.sock']) expect(parse({ redis: { url } }).redis!.url).toBe(url);
    expect(parse({ storage: { driver: 'postgres', url: '/var/run/postgresql rookery' } }).storage.url).toBe('/var/run/postgresql rookery');
    // SQLite does not use the URL, so an unrelated DATABASE_URL in the environment is no problem.
    expect(parse({}, { DATABASE_URL: 'mysql://elsewhere' }).storage.driver).toBe('sqlite');
  });

  it('rejects sockets that cannot all be bound: two listeners, or a listener and the API, on one address and port', () => {
    const overlap = '; two sockets cannot listen on one address and port';
    expect(problemsOf({ smtp: { listeners: [{ port: 2525 }, { port: 2525, tls: 'implicit' }] } })).toEqual([
      `smtp.listeners[1]: 127.0.0.1:2525 overlaps smtp.listeners[0] (127.0.0.1:2525)${overlap}`,
    ]);
    expect(problemsOf({ smtp: { listeners: [{ host: '0.0.0.0', port: 587 }, { host: '::', port: 587 }] }, api: { listen: { port: 587 } } })).toEqual([
      `smtp.listeners[1]: [::]:587 overlaps smtp.listeners[0] (0.0.0.0:587)${overlap}`,
      `api.listen: 127.0.0.1:587 overlaps smtp.listeners[0] (0.0.0.0:587)${overlap}`,
    ]);
    // Different addresses, different families, or any free port (0) are fine.
    expect(parse({ smtp: { listeners: [{ host: '127.0.0.1', port: 25 }, { host: '127.0.0.2', port: 25 }, { host: '::1', port: 25 }] } }).smtp.listeners).toHaveLength(3);
    expect(parse({ smtp: { listeners: [{ port: 0 }, { port: 0 }] }, api: { listen: { port: 0 } } }).smtp.listeners).toHaveLength(2);
  });
});

describe('egress pools', () => {
  const ips = [
    { address: '192.0.2.10' },
    { address: '192.0.2.11', pool: 'marketing', weight: 0, warmup: { plan: 'conservative', start: '2026-11-01' } },
  ];

  it('gives IPs the default pool and weight, and turns warm-up start dates into UTC midnights', () => {
    const config = parse({ ips, pools: { marketing: { senders: ['news.example.com'] } } });
    expect(config.ips[0]).toMatchObject({ pool: 'default', weight: 100 });
    expect(config.ips[1]).toMatchObject({ pool: 'marketing', weight: 0, warmup: { plan: 'conservative', start: Date.UTC(2026, 10, 1) } });
  });

  it('refuses bad dates, and pools no IP belongs to', () => {
    expect(problemsOf({ ips: [{ address: '192.0.2.10', warmup: { plan: 'conservative', start: '2026-02-30' } }] })).toEqual([
      'ips[0].warmup.start: not a date (use YYYY-MM-DD): "2026-02-30"',
    ]);
    expect(
      problemsOf({
        ips,
        pools: { bulk: { senders: [] } },
        smtp: { users: [{ username: 'a', password: 'p', allowedSenders: ['*'], pool: 'vip', pools: ['marketing', 'other'] }] },
        api: { tokens: [{ name: 'app', role: 'sender', hash: `sha256:${'0'.repeat(64)}`, allowedSenders: ['*'], pool: 'gone', pools: ['marketing'] }] },
        delivery: { tlsReports: { pool: 'reports' } },
      }),
    ).toEqual([
      'pools.bulk: no IP in ips belongs to pool "bulk"',
      'smtp.users[0].pool: no IP in ips belongs to pool "vip"',
      'smtp.users[0].pools[1]: no IP in ips belongs to pool "other"',
      'api.tokens[0].pool: no IP in ips belongs to pool "gone"',
      'delivery.tlsReports.pool: no IP in ips belongs to pool "reports"',
    ]);
    expect(problemsOf({ ips: [{ address: '192.0.2.10', pool: 'marketing' }] })).toEqual([
      'ips: no IP belongs to pool "default", which mail without a pool of its own uses',
    ]);
  });

  it('accepts any pool name when no IPs are configured (everything uses the OS default address)', () => {
    expect(parse({ smtp: { users: [{ username: 'a', password: 'p', allowedSenders: ['*'], pool: 'vip' }] } }).smtp.users[0]!.pool).toBe('vip');
  });
});

describe('environment overrides', () => {
  it('DATABASE_URL supplies the PostgreSQL URL and wins over the file', () => {
    const fromEnv = parse({ storage: { driver: 'postgres' } }, { DATABASE_URL: 'postgres://db.internal/rookery' });
    expect(fromEnv.storage.url).toBe('postgres://db.internal/rookery');
    const overridden = parse({ storage: { driver: 'postgres', url: 'postgres://file/x' } }, { DATABASE_URL: 'postgres://env/y' });
    expect(overridden.storage.url).toBe('postgres://env/y');
    expect(overridden.storage.driver).toBe('postgres');
  });

  it('REDIS_URL turns Redis on and wins over the file', () => {
    expect(parse({}, { REDIS_URL: 'redis://127.0.0.1:6379/2' }).redis).toEqual({ url: 'redis://127.0.0.1:6379/2', keyPrefix: 'rookery:' });
    expect(parse({ redis: { url: 'redis://file:6379' } }, { REDIS_URL: 'redis://env:6379' }).redis!.url).toBe('redis://env:6379');
    expect(parse({ redis: { url: 'redis://file:6379' } }, {}).redis!.url).toBe('redis://file:6379');
  });

  it('reads overrides from process.env when no environment is passed', () => {
    const saved = process.env.REDIS_URL;
    process.env.REDIS_URL = 'redis://from-process-env:6379';
    try {
      expect(parseConfig({}, 'test').redis!.url).toBe('redis://from-process-env:6379');
    } finally {
      if (saved === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = saved;
    }
  });
});

describe('the result', () => {
  it('is frozen all the way down', () => {
    const config = parse({ ips: [{ address: '127.0.0.2' }] });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.delivery.retry)).toBe(true);
    expect(Object.isFrozen(config.smtp.listeners)).toBe(true);
    expect(Object.isFrozen(config.ips[0])).toBe(true);
    expect(() => {
      (config.delivery.retry as { initial: number }).initial = 1;
    }).toThrow(TypeError);
    expect(() => (config.ips as unknown as unknown[]).push({ address: '127.0.0.3' })).toThrow(TypeError);
  });
});

describe('loading YAML files', () => {
  it('loads a valid file', () => {
    const path = writeYaml('ok.yaml', 'storage:\n  path: /var/lib/rookery/q.db\ndelivery:\n  routes:\n    "*": mx\n    example.test: "127.0.0.1:2526"\n');
    const config = loadConfigFile(path, {});
    expect(config.storage.path).toBe('/var/lib/rookery/q.db');
    expect(config.delivery.routes).toEqual({ '*': 'mx', 'example.test': '127.0.0.1:2526' });
  });

  it('reports a YAML syntax error with its line and column', () => {
    const path = writeYaml('broken.yaml', 'log:\n  level: info\napi: {listen: {port: 8025}\n');
    let error: unknown;
    try {
      loadConfigFile(path, {});
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { source, problems } = error as ConfigError;
    expect(source).toBe(path);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/at line \d+, column \d+$/);
  });

  it('rejects a key given twice', () => {
    const path = writeYaml('twice.yaml', 'log:\n  level: info\nlog:\n  level: debug\n');
    expect(() => loadConfigFile(path, {})).toThrow(/Map keys must be unique at line 3, column 1/);
  });

  it('refuses a __proto__ key with its path, which the schemas would drop without a word', () => {
    const path = writeYaml('proto.yaml', 'tenants:\n  __proto__:\n    senderDomains: [a.example]\n  acme:\n    senderDomains: [b.example]\nsmtp:\n  users:\n    - {__proto__: {x: 1}}\n');
    expect(() => loadConfigFile(path, {})).toThrow(ConfigError);
    try {
      loadConfigFile(path, {});
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'tenants.__proto__: a key of this name cannot be used (it names a member of every object)',
        'smtp.users[0].__proto__: a key of this name cannot be used (it names a member of every object)',
      ]);
    }
  });

  it('reports a missing file as a configuration problem', () => {
    const path = join(dir, 'missing.yaml');
    expect(() => loadConfigFile(path, {})).toThrow(ConfigError);
    expect(() => loadConfigFile(path, {})).toThrow(/cannot read file: ENOENT/);
  });

  it('names the file and the path of each problem in the message', () => {
    const path = writeYaml('bad.yaml', 'ips:\n  - address: 127.0.0.2\n  - address: 127.0.0.3\n  - address: not-an-ip\n');
    expect(() => loadConfigFile(path, {})).toThrow(`${path}: invalid configuration\n  ips[2].address: not an IP address`);
  });
});
