import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, formatPath } from '../../src/config/config-error.ts';
import { classifyError, classifyReply } from '../../src/engine/classify.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { reputationConfigSchema } from '../../src/config/pool-schemas.ts';
import { reactionRulesConfigSchema, type ReactionRuleConfig, type ReactionRuleInput } from '../../src/config/rule-schemas.ts';
import { ReactionEngine, RECOVERY_STEP_MS, loadReactionRules, recoveryCompleteAt, recoveryRate, replySubject } from '../../src/ippool/reaction-rules.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

const temp = await createTempDir('rookery-reaction-rules');
const dir = temp.path;
afterAll(() => temp.remove());

function writeFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The config keys as the lead wires them into the config schema. */
const configPart = z.strictObject({ reputation: reputationConfigSchema, reactionRules: reactionRulesConfigSchema });

/** Problems reported the way the config loader reports them. */
function problemsOf(raw: unknown): string[] {
  const result = configPart.safeParse(raw);
  if (result.success) throw new Error('accepted');
  return result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

function operatorRules(rules: ReactionRuleInput[]): ReactionRuleConfig[] {
  return reactionRulesConfigSchema.parse(rules);
}

const emptyBuiltin = writeFile('empty.yaml', '[]\n');

function engineOf(rules: ReactionRuleInput[], builtinPath = emptyBuiltin): ReactionEngine {
  return new ReactionEngine(loadReactionRules(builtinPath, operatorRules(rules)));
}

function reply(raw: string): DeliveryOutcome {
  return classifyReply({ code: Number(raw.slice(0, 3)), text: raw, stage: 'rcpt', remoteHost: 'mx.example.net', egressIp: '127.0.0.2' }, BOUNCE_RULES);
}

const IP = '127.0.0.2';
const SITE = 'mx.example.net';
const MINUTE = 60_000;

describe('reputation and reactionRules config', () => {
  it('an empty config gives the defaults and no operator rules', () => {
    expect(configPart.parse({})).toEqual({ reputation: { window: 3_600_000, minSamples: 20, floor: 0.7 }, reactionRules: [] });
  });

  it('reads a rule with its trigger, rate and duration resolved', () => {
    const parsed = configPart.parse({
      reputation: { window: '30m', minSamples: 50, floor: 0.5 },
      reactionRules: [
        { name: 'my-rule', match: '4\\.7\\.28', provider: 'gmail', trigger: '5 per 10m', action: 'throttle', rate: '2/m', duration: '1h' },
        { name: 'hard', match: 'go away', action: 'bounce' },
        { name: 'not-the-ip', match: 'unauthenticated', action: 'none' },
      ],
    });
    expect(parsed.reputation).toEqual({ window: 1_800_000, minSamples: 50, floor: 0.5 });
    expect(parsed.reactionRules).toEqual([
      { name: 'my-rule', match: '4\\.7\\.28', provider: 'gmail', trigger: { count: 5, periodMs: 600_000 }, action: 'throttle', rate: 120, duration: 3_600_000 },
      { name: 'hard', match: 'go away', trigger: { count: 1, periodMs: 0 }, action: 'bounce' },
      { name: 'not-the-ip', match: 'unauthenticated', trigger: { count: 1, periodMs: 0 }, action: 'none' },
    ]);
  });

  it('names the exact path of each problem', () => {
    const good = { name: 'ok', match: 'x', action: 'suspend-ip', duration: '1h' };
    expect(
      problemsOf({
        reactionRules: [good, { ...good, name: 'b' }, { ...good, name: 'c', match: '(unclosed' }],
      }),
    ).toEqual(['reactionRules[2].match: not a valid regular expression (Unterminated group)']);
    expect(problemsOf({ reactionRules: [{ ...good, trigger: 'often' }] })).toEqual([
      'reactionRules[0].trigger: not a trigger (use "immediate" or "N per period", e.g. "5 per 10m"): "often"',
    ]);
    expect(problemsOf({ reactionRules: [{ ...good, trigger: '0 per 10m' }] })[0]).toMatch(/^reactionRules\[0\]\.trigger: not a trigger/);
    expect(problemsOf({ reactionRules: [{ name: 't', match: 'x', action: 'throttle', duration: '1h' }] })).toEqual([
      'reactionRules[0].rate: required when action is throttle (e.g. 100/h)',
    ]);
    expect(problemsOf({ reactionRules: [{ name: 't', match: 'x', action: 'throttle', rate: 'fast', duration: '1h' }] })[0]).toMatch(
      /^reactionRules\[0\]\.rate: not a rate above zero/,
    );
    expect(problemsOf({ reactionRules: [{ ...good, rate: '10/h' }] })).toEqual(['reactionRules[0].rate: only used by action throttle, not suspend-ip']);
    expect(problemsOf({ reactionRules: [{ name: 'b', match: 'x', action: 'bounce', duration: '1h' }] })).toEqual([
      'reactionRules[0].duration: not used by action bounce (the recipient is bounced at once)',
    ]);
    expect(problemsOf({ reactionRules: [{ name: 'n', match: 'x', action: 'none', duration: '1h' }] })).toEqual([
      'reactionRules[0].duration: not used by action none (nothing is restricted)',
    ]);
    expect(problemsOf({ reactionRules: [{ name: 's', match: 'x', action: 'suspend-provider' }] })).toEqual([
      'reactionRules[0].duration: required for action suspend-provider (e.g. 1h)',
    ]);
    expect(problemsOf({ reactionRules: [{ ...good, action: 'suspend' }] })[0]).toMatch(/^reactionRules\[0\]\.action: /);
    expect(problemsOf({ reactionRules: [good, good] })).toEqual(['reactionRules[1].name: duplicate rule name "ok"']);
    expect(problemsOf({ reactionRules: [{ ...good, match: '' }] })).toEqual(['reactionRules[0].match: an empty expression would match every reply']);
    expect(problemsOf({ reputation: { floor: 1.5 } })[0]).toMatch(/^reputation\.floor: /);
    expect(problemsOf({ reputation: { window: '0s' } })[0]).toMatch(/^reputation\.window: not a duration above zero/);
    expect(problemsOf({ reputation: { minSamples: 0 } })[0]).toMatch(/^reputation\.minSamples: /);
  });

  it('rejects unknown keys', () => {
    const result = configPart.safeParse({ reactionRules: [{ name: 'x', match: 'x', action: 'bounce', regex: 'y' }], reputation: { windw: '1h' } });
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => i.code)).toEqual(['unrecognized_keys', 'unrecognized_keys']);
  });
});

describe('loadReactionRules', () => {
  it('names the built-in file and the item of a bad built-in rule', () => {
    const path = writeFile(
      'bad.yaml',
      [
        '- { name: a, match: "x", action: bounce }',
        '- { name: b, match: "x", action: bounce }',
        '- { name: c, match: "x", action: bounce }',
        '- { name: d, match: "x", trigger: "sometimes", action: bounce }',
      ].join('\n'),
    );
    try {
      loadReactionRules(path);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).source).toBe(path);
      expect((err as ConfigError).problems).toEqual(['[3].trigger: not a trigger (use "immediate" or "N per period", e.g. "5 per 10m"): "sometimes"']);
    }
  });

  it('reports a missing file, a YAML syntax error and a file that is not a list', () => {
    expect(() => loadReactionRules(join(dir, 'missing.yaml'))).toThrow(/cannot read file/);
    expect(() => loadReactionRules(writeFile('syntax.yaml', '- name: a\n  match: [unclosed\n'))).toThrow(ConfigError);
    expect(() => loadReactionRules(writeFile('map.yaml', 'name: a\n'))).toThrow(/\(root\): /);
  });

  it('puts operator rules first; an operator rule named like a built-in one replaces it', () => {
    const builtin = writeFile(
      'builtin.yaml',
      [
        '- { name: first, match: "a", action: suspend-ip, duration: 1h }',
        '- { name: second, match: "b", action: suspend-ip, duration: 1h }',
      ].join('\n'),
    );
    const rules = loadReactionRules(
      builtin,
      operatorRules([
        { name: 'mine', match: 'c', action: 'bounce' },
        { name: 'second', match: 'd', action: 'throttle', rate: '10/h', duration: '5m' },
      ]),
    );
    expect(rules.map((r) => [r.name, r.origin])).toEqual([
      ['mine', 'operator'],
      ['second', 'operator'],
      ['first', 'built-in'],
    ]);
    expect(rules[1]!.action).toEqual({ kind: 'throttle', ratePerHour: 10 });
    expect(rules[1]!.durationMs).toBe(300_000);
    expect(rules[0]!.durationMs).toBe(0);
  });

  it('names the config path when handed operator rules that skipped the schema', () => {
    const bogus = [{ name: 'x', match: '[', trigger: { count: 1, periodMs: 0 }, action: 'bounce' }] as ReactionRuleConfig[];
    expect(() => loadReactionRules(emptyBuiltin, bogus)).toThrow(/reactionRules\[0\]\.match: not a valid regular expression/);
  });

  it('loads the shipped config/reaction-rules.yaml', () => {
    const rules = loadReactionRules(new URL('../../config/reaction-rules.yaml', import.meta.url).pathname);
    expect(rules.length).toBeGreaterThan(10);
    expect(rules.every((r) => r.origin === 'built-in')).toBe(true);
  });
});

describe('replySubject', () => {
  it('is "<code> <enhanced> <text>" with the derived enhanced code when the remote gave none', () => {
    expect(replySubject(reply('421 4.7.28 Slow down'))).toBe('421 4.7.28 Slow down');
    expect(replySubject(reply('421 Too many connections'))).toBe('421 4.0.0 Too many connections');
    expect(replySubject(reply('550-5.7.1 first line\r\n550 5.7.1 second line'))).toBe('550 5.7.1 first line second line');
  });

  it('is null when no remote replied', () => {
    const refused = classifyError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), { stage: 'connect', remoteHost: 'mx', egressIp: IP }, BOUNCE_RULES);
    expect(replySubject(refused)).toBeNull();
  });
});

describe('ReactionEngine.evaluate', () => {
  const rules: ReactionRuleInput[] = [
    { name: 'gmail-only', match: '^421 4\\.7\\.28 ', provider: 'gmail', action: 'throttle', rate: '100/h', duration: '1h' },
    { name: 'counted', match: 'try again later', trigger: '3 per 10m', action: 'throttle', rate: '600/h', duration: '15m' },
    { name: 'any-4728', match: '4\\.7\\.28', action: 'suspend-provider', duration: '30m' },
    { name: 'bounce-it', match: 'no such domain', action: 'bounce' },
    { name: 'listed', match: 'LISTED', action: 'suspend-ip', duration: '1d' },
  ];

  it('returns the reaction of the first matching rule, with the reply as the reason', () => {
    const engine = engineOf(rules);
    const outcome = reply('421 4.7.28 Our system has detected an unusual rate');
    expect(engine.evaluate({ ip: IP, provider: 'gmail', site: SITE, outcome, now: 0 })).toEqual([
      {
        rule: 'gmail-only',
        action: { kind: 'throttle', ratePerHour: 100 },
        durationMs: 3_600_000,
        ip: IP,
        provider: 'gmail',
        scope: { kind: 'provider', provider: 'gmail' },
        reason: '421 4.7.28 Our system has detected an unusual rate',
      },
    ]);
  });

  it('skips rules for another provider; the next matching rule decides', () => {
    const engine = engineOf(rules);
    const [reaction] = engine.evaluate({ ip: IP, provider: 'outlook', site: SITE, outcome: reply('421 4.7.28 unusual rate'), now: 0 });
    expect(reaction?.rule).toBe('any-4728');
    expect(reaction?.action).toEqual({ kind: 'suspend-provider' });
    expect(reaction?.provider).toBe('outlook');
  });

  it('matches case-insensitively', () => {
    const engine = engineOf(rules);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('554 5.7.1 you are listed'), now: 0 })[0]?.action).toEqual({ kind: 'suspend-ip' });
  });

  it('a bounce rule answers with a bounce reaction and no duration', () => {
    const engine = engineOf(rules);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('450 4.1.2 No such domain here'), now: 0 })).toEqual([
      { rule: 'bounce-it', action: { kind: 'bounce' }, durationMs: 0, ip: IP, provider: 'other', scope: { kind: 'site', provider: 'other', site: SITE }, reason: '450 4.1.2 No such domain here' },
    ]);
  });

  it('ignores delivered outcomes and outcomes without a remote reply', () => {
    const engine = engineOf([{ name: 'everything', match: '.', action: 'suspend-ip', duration: '1h' }]);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('250 2.0.0 Ok: queued'), now: 0 })).toEqual([]);
    const timeout = classifyError(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT' }), { stage: 'connect', remoteHost: 'mx', egressIp: IP }, BOUNCE_RULES);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: timeout, now: 0 })).toEqual([]);
    const throttled: DeliveryOutcome = { ...timeout, disposition: 'throttled', code: null };
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: throttled, now: 0 })).toEqual([]);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('451 4.3.0 temporary'), now: 0 })).toHaveLength(1);
  });

  it('"N per period" fires on the Nth match within the period, then counts from zero', () => {
    const engine = engineOf(rules);
    const outcome = reply('451 4.3.0 Please try again later');
    const fire = (now: number) => engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome, now }).map((r) => r.rule);
    expect(fire(0)).toEqual([]);
    expect(fire(1 * MINUTE)).toEqual([]);
    expect(fire(2 * MINUTE)).toEqual(['counted']);
    // The count started again: two more are not enough.
    expect(fire(3 * MINUTE)).toEqual([]);
    expect(fire(4 * MINUTE)).toEqual([]);
    expect(fire(5 * MINUTE)).toEqual(['counted']);
  });

  it('"N per period" does not fire when the matches are spread wider than the period', () => {
    const engine = engineOf(rules);
    const outcome = reply('451 4.3.0 Please try again later');
    const fired: string[] = [];
    // One match every 6 minutes: never 3 within 10 minutes.
    for (let i = 0; i < 10; i++) fired.push(...engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome, now: i * 6 * MINUTE }).map((r) => r.rule));
    expect(fired).toEqual([]);
  });

  it('counts per (rule, IP, provider)', () => {
    const engine = engineOf(rules);
    const outcome = reply('451 4.3.0 Please try again later');
    const fire = (ip: string, provider: string, now: number) => engine.evaluate({ ip, provider, site: SITE, outcome, now }).length;
    expect(fire('127.0.0.2', 'gmail', 0) + fire('127.0.0.3', 'gmail', 1) + fire('127.0.0.2', 'yahoo', 2)).toBe(0);
    expect(fire('127.0.0.2', 'gmail', 3) + fire('127.0.0.3', 'gmail', 4) + fire('127.0.0.2', 'yahoo', 5)).toBe(0);
    expect(fire('127.0.0.3', 'gmail', 6)).toBe(1);
    expect(fire('127.0.0.2', 'gmail', 7)).toBe(1);
    expect(fire('127.0.0.2', 'yahoo', 8)).toBe(1);
  });

  it('for the fallback provider, scopes each reaction to the site that replied and counts per site', () => {
    const engine = engineOf(rules);
    const outcome = reply('451 4.3.0 Please try again later');
    const fire = (site: string, now: number) => engine.evaluate({ ip: IP, provider: 'other', site, outcome, now });
    // Two small sites answer twice each: four replies from `other`, but no site reached three.
    for (const [i, site] of ['mx.a.test', 'mx.b.test', 'mx.a.test', 'mx.b.test'].entries()) expect(fire(site, i)).toEqual([]);
    const [reaction] = fire('mx.b.test', 4);
    expect(reaction).toMatchObject({ rule: 'counted', provider: 'other', scope: { kind: 'site', provider: 'other', site: 'mx.b.test' } });
    expect(fire('mx.a.test', 5)[0]?.scope).toEqual({ kind: 'site', provider: 'other', site: 'mx.a.test' });
    // A named provider's reaction covers the provider, whatever its site.
    expect(engine.evaluate({ ip: IP, provider: 'gmail', site: 'aspmx.l.google.com', outcome: reply('421 4.7.28 unusual rate'), now: 6 })[0]?.scope).toEqual({ kind: 'provider', provider: 'gmail' });
  });

  it('a reply taken by a counting rule is not seen by later rules', () => {
    const engine = engineOf([
      { name: 'counted', match: 'rate', trigger: '2 per 1h', action: 'throttle', rate: '10/h', duration: '1h' },
      { name: 'later', match: 'rate', action: 'suspend-ip', duration: '1h' },
    ]);
    expect(engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('421 4.7.0 rate limited'), now: 0 })).toEqual([]);
    expect(engine.match({ provider: 'other', outcome: reply('421 4.7.0 rate limited') })?.name).toBe('counted');
  });

  it('drops the counters of triggers whose period has passed', () => {
    const engine = engineOf(rules);
    const outcome = reply('451 4.3.0 Please try again later');
    for (let i = 0; i < 50; i++) engine.evaluate({ ip: `10.0.0.${i}`, provider: 'other', site: SITE, outcome, now: 0 });
    expect(engine.pendingTriggers).toBe(50);
    engine.evaluate({ ip: IP, provider: 'other', site: SITE, outcome: reply('250 2.0.0 Ok'), now: 11 * MINUTE });
    expect(engine.pendingTriggers).toBe(0);
  });
});

describe('recovery after a reaction', () => {
  const suspension = { action: { kind: 'suspend-provider' } } as const;
  const throttle = (ratePerHour: number) => ({ action: { kind: 'throttle', ratePerHour } }) as const;
  const endsAt = 1_000_000_000;
  const normal = 100;

  it('a suspension sends nothing until it ends', () => {
    expect(recoveryRate({ reaction: suspension, now: endsAt - 1, endsAt, normalRatePerSecond: normal })).toBe(0);
    expect(recoveryRate({ reaction: { action: { kind: 'suspend-ip' } }, now: endsAt - 1, endsAt, normalRatePerSecond: normal })).toBe(0);
  });

  it('a throttle sends at its own rate until it ends', () => {
    expect(recoveryRate({ reaction: throttle(360), now: endsAt - 1, endsAt, normalRatePerSecond: normal })).toBeCloseTo(0.1);
  });

  it('then starts at 10 % of normal and doubles every 15 minutes until normal', () => {
    const at = (ms: number) => recoveryRate({ reaction: suspension, now: endsAt + ms, endsAt, normalRatePerSecond: normal });
    expect(at(0)).toBeCloseTo(10);
    expect(at(RECOVERY_STEP_MS - 1)).toBeCloseTo(10);
    expect(at(RECOVERY_STEP_MS)).toBeCloseTo(20);
    expect(at(2 * RECOVERY_STEP_MS)).toBeCloseTo(40);
    expect(at(3 * RECOVERY_STEP_MS)).toBeCloseTo(80);
    expect(at(4 * RECOVERY_STEP_MS)).toBe(100);
    expect(at(10_000 * RECOVERY_STEP_MS)).toBe(100);
    expect(recoveryCompleteAt({ reaction: suspension, endsAt, normalRatePerSecond: normal })).toBe(endsAt + 4 * RECOVERY_STEP_MS);
  });

  it('a throttle faster than 10 % of normal ramps from its own rate', () => {
    // 108000/h = 30/s: 30, 60, 100.
    const at = (ms: number) => recoveryRate({ reaction: throttle(108_000), now: endsAt + ms, endsAt, normalRatePerSecond: normal });
    expect(at(0)).toBeCloseTo(30);
    expect(at(RECOVERY_STEP_MS)).toBeCloseTo(60);
    expect(at(2 * RECOVERY_STEP_MS)).toBe(100);
    expect(recoveryCompleteAt({ reaction: throttle(108_000), endsAt, normalRatePerSecond: normal })).toBe(endsAt + 2 * RECOVERY_STEP_MS);
  });

  it('a slow throttle ramps from its own rate too, however long that takes; its record lasts as long', () => {
    // 60/h = 1/60 per second, doubled 13 times: 136/s, past 100/s.
    const at = (ms: number) => recoveryRate({ reaction: throttle(60), now: endsAt + ms, endsAt, normalRatePerSecond: normal });
    expect(at(0)).toBeCloseTo(1 / 60);
    expect(at(RECOVERY_STEP_MS)).toBeCloseTo(2 / 60);
    expect(at(12 * RECOVERY_STEP_MS)).toBeCloseTo(4096 / 60);
    expect(at(13 * RECOVERY_STEP_MS)).toBe(100);
    expect(recoveryCompleteAt({ reaction: throttle(60), endsAt, normalRatePerSecond: normal })).toBe(endsAt + 13 * RECOVERY_STEP_MS);
  });

  it('a throttle to nothing names no rate to come back at: it ramps like a suspension', () => {
    expect(recoveryRate({ reaction: throttle(0), now: endsAt, endsAt, normalRatePerSecond: normal })).toBeCloseTo(10);
    expect(recoveryCompleteAt({ reaction: throttle(0), endsAt, normalRatePerSecond: normal })).toBe(endsAt + 4 * RECOVERY_STEP_MS);
  });

  it.each(['bounce', 'none'] as const)('a %s reaction never limits the rate', (kind) => {
    const reaction = { action: { kind } };
    expect(recoveryRate({ reaction, now: endsAt - 1, endsAt, normalRatePerSecond: normal })).toBe(100);
    expect(recoveryCompleteAt({ reaction, endsAt, normalRatePerSecond: normal })).toBe(endsAt);
  });
});
