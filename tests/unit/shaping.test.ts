import { describe, expect, it } from 'vitest';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { parseRate, shapingConfigSchema, shapingFileSchema } from '../../src/config/pool-schemas.ts';
import { ShapingTable } from '../../src/ippool/shaping.ts';

const file = shapingFileSchema.parse({
  default: { maxConnections: 10, maxMessagesPerConnection: 100, messageRate: '100/s', connectionRate: '20/s' },
  providers: {
    gmail: { maxConnections: 5, maxMessagesPerConnection: 50 },
    slow: { messageRate: '30/m', messageBurst: 10 },
  },
});

describe('parseRate', () => {
  it('turns a count per second, minute, hour or day into a count per second', () => {
    expect(parseRate('100/s')).toBe(100);
    expect(parseRate('30/m')).toBe(0.5);
    expect(parseRate('1800/h')).toBe(0.5);
    expect(parseRate('86400/d')).toBe(1);
    expect(parseRate(' 2.5 / s ')).toBe(2.5);
  });

  it('refuses anything else, and rates of zero', () => {
    for (const text of ['100', '100/x', '/s', 'fast', '-1/s', '0/s', '0.0/m', '1e3/s', '100/sec', '']) {
      expect(parseRate(text), text).toBeNull();
    }
  });
});

describe('shapingConfigSchema', () => {
  it('{} and nothing at all are valid: nothing is changed', () => {
    expect(shapingConfigSchema.parse({})).toEqual({ default: {}, providers: {} });
    expect(shapingConfigSchema.parse(undefined)).toEqual({ default: {}, providers: {} });
  });

  it('parses rates to numbers per second', () => {
    const parsed = shapingConfigSchema.parse({
      default: { messageRate: '1000/h', connectionRate: '30/m', connectionBurst: 3 },
      providers: { gmail: { maxConnections: 5 } },
    });
    expect(parsed.default).toEqual({ messageRate: 1000 / 3600, connectionRate: 0.5, connectionBurst: 3 });
    expect(parsed.providers).toEqual({ gmail: { maxConnections: 5 } });
  });

  it('says what a rate looks like, at the path of the bad value', () => {
    const issues = shapingConfigSchema.safeParse({ default: { messageRate: 'fast' }, providers: { gmail: { connectionRate: 100 } } }).error!.issues;
    expect(issues.map((i) => [i.path.join('.'), i.message])).toEqual(
      expect.arrayContaining([['default.messageRate', 'not a rate (use e.g. 100/s, 30/m, 1000/h): "fast"']]),
    );
    expect(issues.some((i) => i.path.join('.') === 'providers.gmail.connectionRate')).toBe(true);
  });

  it('refuses unknown keys and counts that are not whole and positive', () => {
    const issues = shapingConfigSchema.safeParse({ default: { maxConnections: 0, maxMessagesPerConnection: 1.5, rate: '1/s' } }).error!.issues;
    expect(issues.map((i) => i.path.join('.'))).toEqual(expect.arrayContaining(['default.maxConnections', 'default.maxMessagesPerConnection', 'default']));
    expect(issues.some((i) => i.code === 'unrecognized_keys')).toBe(true);
  });

  it('the data file needs a complete default', () => {
    const issues = shapingFileSchema.safeParse({ default: { maxConnections: 10 } }).error!.issues;
    expect(issues.map((i) => i.path.join('.')).sort()).toEqual(['default.connectionRate', 'default.maxMessagesPerConnection', 'default.messageRate']);
  });
});

describe('shapingFor', () => {
  it('gives the default to providers without an entry, a second of rate as burst', () => {
    const table = new ShapingTable(file);
    expect(table.shapingFor('other')).toEqual({
      maxConnections: 10,
      maxMessagesPerConnection: 100,
      messageRate: { ratePerSecond: 100, burst: 100 },
      connectionRate: { ratePerSecond: 20, burst: 20 },
    });
    expect(table.shapingFor('never-heard-of')).toEqual(table.shapingFor('other'));
  });

  it('a provider entry changes only the fields it gives', () => {
    const table = new ShapingTable(file);
    expect(table.shapingFor('gmail')).toEqual({
      maxConnections: 5,
      maxMessagesPerConnection: 50,
      messageRate: { ratePerSecond: 100, burst: 100 },
      connectionRate: { ratePerSecond: 20, burst: 20 },
    });
    expect(table.shapingFor('slow').messageRate).toEqual({ ratePerSecond: 0.5, burst: 10 });
  });

  it('a burst is at least 1, so a rate below one a second can send at all', () => {
    const table = new ShapingTable(file, shapingConfigSchema.parse({ providers: { trickle: { messageRate: '6/m' } } }));
    expect(table.shapingFor('trickle').messageRate).toEqual({ ratePerSecond: 0.1, burst: 1 });
  });

  it("merges the operator's values over the file's, field by field", () => {
    const table = new ShapingTable(
      file,
      shapingConfigSchema.parse({
        default: { maxConnections: 3, messageRate: '50/s' },
        providers: { gmail: { maxMessagesPerConnection: 20 }, yahoo: { maxMessagesPerConnection: 20 } },
      }),
    );
    // The operator's default reaches every provider, except where a provider entry sets the field.
    expect(table.shapingFor('other')).toMatchObject({ maxConnections: 3, maxMessagesPerConnection: 100, messageRate: { ratePerSecond: 50, burst: 50 } });
    expect(table.shapingFor('gmail')).toMatchObject({ maxConnections: 5, maxMessagesPerConnection: 20, messageRate: { ratePerSecond: 50, burst: 50 } });
    expect(table.shapingFor('yahoo')).toMatchObject({ maxConnections: 3, maxMessagesPerConnection: 20 });
    expect(table.shapingFor('slow')).toMatchObject({ maxConnections: 3, messageRate: { ratePerSecond: 0.5, burst: 10 } });
  });

  it('hands out frozen objects', () => {
    const shaping = new ShapingTable(file).shapingFor('gmail');
    expect(Object.isFrozen(shaping)).toBe(true);
    expect(Object.isFrozen(shaping.messageRate)).toBe(true);
  });
});

describe('config/shaping.yaml', () => {
  const { shaping } = loadPoolData();

  it('defaults to 10 connections, 100 messages per connection and 100 messages a second', () => {
    expect(shaping.shapingFor('other')).toMatchObject({ maxConnections: 10, maxMessagesPerConnection: 100, messageRate: { ratePerSecond: 100 } });
  });

  it('holds the providers\' own limits', () => {
    expect(shaping.shapingFor('gmail')).toMatchObject({ maxConnections: 5, maxMessagesPerConnection: 50 });
    expect(shaping.shapingFor('yahoo').maxMessagesPerConnection).toBe(20);
    expect(shaping.shapingFor('outlook').maxMessagesPerConnection).toBe(50);
    expect(shaping.shapingFor('apple').maxMessagesPerConnection).toBe(5);
  });
});
