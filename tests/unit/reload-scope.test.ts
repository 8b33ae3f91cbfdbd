import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { planReload, RELOAD_SCOPE } from '../../src/config/reload-scope.ts';
import { configSchema, type ConfigInput } from '../../src/config/schema.ts';

const parse = (raw: ConfigInput) => parseConfig(raw, 'test', {});
const BASE: ConfigInput = { hostname: 'mta1.example.com', ips: [{ address: '203.0.113.7' }] };

describe('planReload', () => {
  it('finds nothing to do in the same file', () => {
    const running = parse(BASE);
    expect(planReload(running, parse(BASE))).toEqual({ config: running, changed: [], restartRequired: [] });
  });

  it('applies what reloads and keeps the running value of what needs a restart, naming each', () => {
    const running = parse({ ...BASE, smtp: { listeners: [{ port: 2525 }] }, delivery: { concurrency: 50 } });
    const next = parse({
      ...BASE,
      hostname: 'mta2.example.com',
      smtp: { listeners: [{ port: 2526 }], users: [{ username: 'app', password: 'secret', allowedSenders: ['*'] }] },
      delivery: { concurrency: 80, maxAge: '2d' },
      ips: [{ address: '203.0.113.7', weight: 20 }],
    });
    const plan = planReload(running, next);
    expect(plan.changed).toEqual(['smtp.users', 'delivery.maxAge', 'ips']);
    expect(plan.restartRequired).toEqual(['hostname', 'smtp.listeners', 'delivery.concurrency']);
    expect(plan.config).toEqual({
      ...next,
      hostname: 'mta1.example.com',
      smtp: { ...next.smtp, listeners: running.smtp.listeners },
      delivery: { ...next.delivery, concurrency: 50 },
    });
  });

  it('leaves out an optional setting the running config lacks, as parsing does', () => {
    const running = parse(BASE);
    const plan = planReload(running, parse({ ...BASE, redis: { url: 'redis://127.0.0.1:6379' }, smtp: { tls: { key: 'k.pem', cert: 'c.pem' } } }));
    expect(plan.restartRequired).toEqual(['redis', 'smtp.tls']);
    expect(plan.config).toStrictEqual(running);
    expect(Object.hasOwn(plan.config, 'redis') || Object.hasOwn(plan.config.smtp, 'tls')).toBe(false);
  });

  it('classifies every setting of every section with keys of its own', () => {
    const sections = configSchema.shape;
    expect(Object.keys(RELOAD_SCOPE).sort()).toEqual(Object.keys(sections).sort());
    const defaults = parse({});
    for (const [key, scope] of Object.entries(RELOAD_SCOPE)) {
      if (typeof scope === 'string') continue;
      expect(Object.keys(scope).sort(), key).toEqual(expect.arrayContaining(Object.keys(defaults[key as keyof typeof defaults] as object)));
    }
  });
});
