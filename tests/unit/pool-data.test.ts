import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { providersConfigSchema, shapingConfigSchema, warmupConfigSchema } from '../../src/config/pool-schemas.ts';
import { loadPoolData, unknownPlans, type LoadPoolDataOptions } from '../../src/ippool/pool-data.ts';
import { DAY_MS } from '../../src/ippool/warmup.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const temp = await createTempDir('rookery-pool-data');
const root = temp.path;
afterAll(() => temp.remove());

/** A config folder holding the shipped data files, with some of them replaced. */
function configDir(replace: Partial<Record<keyof typeof DATA_FILES, string>> = {}): string {
  const dir = mkdtempSync(join(root, 'config-'));
  for (const [key, name] of Object.entries(DATA_FILES)) {
    const text = replace[key as keyof typeof DATA_FILES];
    if (text === undefined) copyFileSync(join(DEFAULT_CONFIG_DIR, name), join(dir, name));
    else writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** The ConfigError loading raises; fails the test when loading succeeds. */
function errorOf(options: LoadPoolDataOptions): ConfigError {
  try {
    loadPoolData(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('pool data was accepted');
}

const overrides = (raw: { warmup?: unknown; providers?: unknown; shaping?: unknown }) => ({
  warmup: warmupConfigSchema.parse(raw.warmup),
  providers: providersConfigSchema.parse(raw.providers),
  shaping: shapingConfigSchema.parse(raw.shaping),
});

describe('the shipped data', () => {
  const data = loadPoolData();

  it('has the three plans; conservative is the 30 days of the issue, then no cap', () => {
    expect([...data.plans.keys()]).toEqual(['conservative', 'transactional', 'aggressive']);
    expect(data.plans.get('conservative')).toEqual([
      50, 100, 200, 400, 800, 1500, 3000, 5000, 7500, 10000, 12500, 15000, 20000, 25000, 30000, 35000, 40000, 45000, 50000, 55000,
      60000, 70000, 80000, 90000, 100000, 110000, 120000, 135000, 150000, 175000,
    ]);
    expect(data.plans.get('transactional')).toHaveLength(21);
    expect(data.plans.get('aggressive')).toHaveLength(14);
  });

  it('every plan only grows', () => {
    for (const [name, caps] of data.plans) {
      expect(caps.every((cap, i) => i === 0 || cap > caps[i - 1]!), name).toBe(true);
    }
  });

  it('has the default warm-up settings: 16 active hours, restart after 30 idle days', () => {
    expect(data.warmup).toEqual({ activeHours: 16, idleRestartMs: 30 * DAY_MS });
  });

  it('is frozen', () => {
    expect(Object.isFrozen(data)).toBe(true);
    expect(Object.isFrozen(data.warmup)).toBe(true);
    expect(Object.isFrozen(data.plans.get('conservative'))).toBe(true);
    expect(Object.isFrozen(data.providers)).toBe(true);
    expect(Object.isFrozen(data.shaping)).toBe(true);
  });

  it('is what an empty config gives', () => {
    const empty = loadPoolData({ overrides: overrides({}) });
    expect([...empty.plans]).toEqual([...data.plans]);
    expect(empty.providers.groups).toEqual(data.providers.groups);
    expect(empty.shaping.shapingFor('gmail')).toEqual(data.shaping.shapingFor('gmail'));
  });
});

describe('operator overrides', () => {
  it('warm-up: settings, and plans added or replaced by name', () => {
    const data = loadPoolData({
      overrides: overrides({ warmup: { activeHours: 20, idleRestart: '14d', plans: { myplan: [100, 200, 400], aggressive: [1000, 5000] } } }),
    });
    expect(data.warmup).toEqual({ activeHours: 20, idleRestartMs: 14 * DAY_MS });
    expect(data.plans.get('myplan')).toEqual([100, 200, 400]);
    expect(data.plans.get('aggressive')).toEqual([1000, 5000]);
    expect(data.plans.get('conservative')).toHaveLength(30);
  });

  it('providers: a change keeps the other fields; a new group is matched before the shipped ones', () => {
    const data = loadPoolData({
      overrides: overrides({
        providers: { gmail: { warmupScale: 0.25 }, workspace: { mx: ['aspmx.l.google.com'], warmupScale: 2 }, mailru: { mx: ['*.mail.ru'] } },
      }),
    });
    expect(data.providers.groups.map((g) => g.name)).toEqual(['workspace', 'mailru', 'gmail', 'outlook', 'yahoo', 'apple', 'comcast', 'orange', 'gmx', 'other']);
    expect(data.providers.warmupScale('gmail')).toBe(0.25);
    expect(data.providers.providerOfSite('alt1.gmail-smtp-in.l.google.com')).toBe('gmail');
    expect(data.providers.providerOfSite('aspmx.l.google.com')).toBe('workspace');
    expect(data.providers.warmupScale('workspace')).toBe(2);
    expect(data.providers.providerOfSite('mxs.mail.ru')).toBe('mailru');
    expect(data.providers.warmupScale('mailru')).toBe(1);
  });

  it('providers: new mx patterns replace the group\'s list', () => {
    const data = loadPoolData({ overrides: overrides({ providers: { comcast: { mx: ['*.xfinity.test'] } } }) });
    expect(data.providers.providerOfSite('mx1a1.comcast.net')).toBe('other');
    expect(data.providers.providerOfSite('mx.xfinity.test')).toBe('comcast');
  });

  it('shaping: merged over the file, also for a provider the operator added', () => {
    const data = loadPoolData({
      overrides: overrides({
        providers: { mailru: { mx: ['*.mail.ru'] } },
        shaping: { default: { messageRate: '10/s' }, providers: { gmail: { maxConnections: 2 }, mailru: { maxConnections: 1 } } },
      }),
    });
    expect(data.shaping.shapingFor('gmail')).toMatchObject({ maxConnections: 2, maxMessagesPerConnection: 50, messageRate: { ratePerSecond: 10 } });
    expect(data.shaping.shapingFor('mailru')).toMatchObject({ maxConnections: 1, maxMessagesPerConnection: 100 });
  });

  it('names the problems of the overrides by their config path', () => {
    const err = errorOf({
      source: '/etc/rookery/rookery.yaml',
      overrides: overrides({
        providers: { mailru: { warmupScale: 2 }, other: { mx: ['*.x.test'] } },
        shaping: { providers: { nosuch: { maxConnections: 1 } } },
      }),
    });
    expect(err.source).toBe('/etc/rookery/rookery.yaml');
    expect(err.problems).toEqual([
      'providers.mailru.mx: required for a provider that providers.yaml does not define',
      'providers.other.mx: "other" matches every MX host no other group matches; it takes no patterns',
      expect.stringMatching(/^shaping\.providers\.nosuch: unknown provider "nosuch" \(known: mailru, gmail, outlook, .*, other\)$/),
    ]);
  });
});

describe('errors in the data files name the file and the path in it', () => {
  it('a bad plan', () => {
    const dir = configDir({ plans: 'conservative: [50, 100]\nbroken: [10, -5, "x"]\n' });
    const err = errorOf({ configDir: dir });
    expect(err.source).toBe(join(dir, 'warmup-plans.yaml'));
    expect(err.problems).toEqual([expect.stringMatching(/^broken\[1\]: /), expect.stringMatching(/^broken\[2\]: /)]);
  });

  it('a bad provider pattern, an unknown key, a group without patterns, a missing other', () => {
    const dir = configDir({ providers: 'gmail:\n  mx: ["*"]\n  warmupScale: 1\n  extra: 1\nempty:\n  warmupScale: 1\n' });
    let err = errorOf({ configDir: dir });
    expect(err.source).toBe(join(dir, 'providers.yaml'));
    expect(err.problems).toEqual([expect.stringMatching(/^gmail\.mx\[0\]: not an MX host pattern/), 'gmail.extra: unknown key']);

    err = errorOf({ configDir: configDir({ providers: 'gmail:\n  mx: ["*.google.com"]\n  warmupScale: 1\nempty:\n  warmupScale: 1\n' }) });
    expect(err.problems).toEqual([
      'other: missing: the group of every MX host no other group matches',
      'empty.mx: a provider needs at least one MX host pattern',
    ]);
  });

  it('a bad rate, and a provider that providers.yaml does not define', () => {
    const base = 'default: { maxConnections: 10, maxMessagesPerConnection: 100, messageRate: 100/s, connectionRate: 20/s }\n';
    let dir = configDir({ shaping: base + 'providers:\n  gmail: { messageRate: lots }\n' });
    let err = errorOf({ configDir: dir });
    expect(err.source).toBe(join(dir, 'shaping.yaml'));
    expect(err.problems).toEqual(['providers.gmail.messageRate: not a rate (use e.g. 100/s, 30/m, 1000/h): "lots"']);

    dir = configDir({ shaping: base + 'providers:\n  gmial: { maxConnections: 5 }\n' });
    err = errorOf({ configDir: dir });
    expect(err.source).toBe(join(dir, 'shaping.yaml'));
    expect(err.problems).toEqual([expect.stringMatching(/^providers\.gmial: unknown provider "gmial"/)]);
  });

  it('YAML syntax errors carry their line, duplicate keys included', () => {
    const err = errorOf({ configDir: configDir({ plans: 'conservative: [50, 100]\nconservative: [1]\n' }) });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/unique.*line 2/i);
  });

  it('an empty or missing file', () => {
    expect(errorOf({ configDir: configDir({ shaping: '' }) }).problems).toEqual([expect.stringMatching(/^\(root\): /)]);
    const dir = configDir();
    rmSync(join(dir, 'providers.yaml'));
    const err = errorOf({ configDir: dir });
    expect(err.source).toBe(join(dir, 'providers.yaml'));
    expect(err.problems).toEqual([expect.stringMatching(/^cannot read file: ENOENT/)]);
  });
});

describe('unknownPlans', () => {
  const data = loadPoolData({ overrides: overrides({ warmup: { plans: { myplan: [1, 2] } } }) });

  it('names every IP whose plan does not exist, by its config path', () => {
    const ips = [
      { address: '127.0.0.2' },
      { address: '127.0.0.3', warmup: { plan: 'x' } },
      { address: '127.0.0.4', warmup: { plan: 'conservative' } },
      { address: '127.0.0.5', warmup: { plan: 'myplan' } },
      { address: '127.0.0.6', warmup: { plan: 'Conservative' } },
    ];
    expect(unknownPlans(ips, data)).toEqual(['ips[1].warmup.plan: unknown warm-up plan "x"', 'ips[4].warmup.plan: unknown warm-up plan "Conservative"']);
  });

  it('is empty when every plan exists or no IP warms up', () => {
    expect(unknownPlans([{ warmup: { plan: 'aggressive' } }, {}], data)).toEqual([]);
    expect(unknownPlans([], data)).toEqual([]);
  });
});
