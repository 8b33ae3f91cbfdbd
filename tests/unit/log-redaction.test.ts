import vm from 'node:vm';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { maskCredentials } from '../../src/observability/mask-credentials.ts';
import { CENSOR, redactSecrets } from '../../src/observability/redact-secrets.ts';

describe('maskCredentials', () => {
  it('masks the user information of any URL, up to the last @ of its authority', () => {
    expect(maskCredentials('redis://:s3cret@127.0.0.1:6379/0')).toBe('redis://***@127.0.0.1:6379/0');
    expect(maskCredentials('connect to postgres://rookery:p@ss@db.internal:5432/q failed')).toBe('connect to postgres://***@db.internal:5432/q failed');
    expect(maskCredentials('rediss://default:x@a:1 then postgresql://u:y@b/c')).toBe('rediss://***@a:1 then postgresql://***@b/c');
  });

  it('masks secret query parameters, in URLs and socket paths alike', () => {
    expect(maskCredentials('redis://cache:6379/0?password=s3cret&db=1')).toBe('redis://cache:6379/0?password=***&db=1');
    expect(maskCredentials('/run/redis.sock?db=2&password=s3cret')).toBe('/run/redis.sock?db=2&password=***');
    expect(maskCredentials('postgres://db/q?sslpassword=s3cret')).toBe('postgres://db/q?sslpassword=***');
  });

  it('masks API tokens wherever they stand', () => {
    const token = `rk_${'A'.repeat(20)}-_${'z'.repeat(21)}`;
    expect(maskCredentials(`GET /v1/queue?api_key=${token}`)).toBe('GET /v1/queue?api_key=rk_***');
    expect(maskCredentials(`{"url":"/v1/${token}/x"}`)).toBe('{"url":"/v1/rk_***/x"}');
  });

  it('masks webhook signing secrets wherever they stand', () => {
    expect(maskCredentials('{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","id":"wh_1"}')).toBe('{"secret":"whsec_***","id":"wh_1"}');
    expect(maskCredentials('key whsec_bmV3+c2Vj/cmV0==.')).toBe('key whsec_***.');
  });

  it('leaves text without credentials as it is', () => {
    for (const text of ['smtp://mx.example.com:25', 'user@example.com', 'redis://cache:6379 refused mail for user@example.com', '250 2.0.0 OK id=abc']) {
      expect(maskCredentials(text)).toBe(text);
    }
  });
});

/** A logger whose lines are kept, as the daemon's logger writes them. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

describe('the logger', () => {
  it('masks a password wherever a library puts it: the message, the stack, a field of its own', () => {
    const { logger, lines } = capturingLogger();
    // ioredis parses the address with new URL(), whose error carries the whole input.
    let err: unknown;
    try {
      new Redis('redis://:s3cret@127.0.0.1:99999/0', { lazyConnect: true });
    } catch (thrown) {
      err = thrown;
    }
    expect((err as { input?: string }).input).toContain('s3cret');
    logger.error({ event: 'test.failed', err }, 'connection to redis://:s3cret@127.0.0.1:99999/0 failed');
    logger.warn({ event: 'test.warned', err: new Error('could not reach postgres://rookery:s3cret@db/q') });
    logger.info({ event: 'test.nested', target: { url: 'postgres://db/q?password=s3cret' } }, 'nested');

    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('s3cret');
    const [failed, warned, nested] = lines.map((line) => JSON.parse(line) as Record<string, any>);
    expect(failed!.msg).toBe('connection to redis://***@127.0.0.1:99999/0 failed');
    expect(failed!.err.input).toBe('redis://***@127.0.0.1:99999/0');
    expect(warned!.err.message).toBe('could not reach postgres://***@db/q');
    expect(warned!.err.stack).toContain('postgres://***@db/q');
    expect(nested!.target.url).toBe('postgres://db/q?password=***');
  });

  it('masks a password that JSON had to escape, and the line stays valid JSON', () => {
    const { logger, lines } = capturingLogger();
    logger.info({ event: 'test.escaped', url: 'postgres://u:a"b\\s3cret@db/q' }, 'escaped');
    expect(lines[0]).not.toContain('s3cret');
    expect((JSON.parse(lines[0]!) as { url: string }).url).toBe('postgres://***@db/q');
  });

  it('redacts password fields by path, and the arguments of a failed Redis command', () => {
    const { logger, lines } = capturingLogger();
    logger.info({ event: 'test.auth', auth: { username: 'app', password: 's3cret' } }, 'auth');
    // ioredis's errors carry the command that failed: HELLO 3 AUTH user password, on connect.
    const refused = Object.assign(new Error('WRONGPASS invalid username-password pair'), { command: { name: 'hello', args: ['3', 'AUTH', 'app', 's3cret'] } });
    logger.error({ event: 'test.refused', err: refused }, 'refused');
    for (const line of lines) expect(line).not.toContain('s3cret');
    expect(JSON.parse(lines[0]!)).toMatchObject({ auth: { username: 'app', password: '[redacted]' } });
    expect(JSON.parse(lines[1]!)).toMatchObject({ err: { command: { name: 'hello', args: '[redacted]' } } });
  });
});

describe('redactSecrets', () => {
  it('censors secret fields at any depth, and those that are secret under their parent', () => {
    const config = {
      smtp: { users: [{ username: 'app', password: 'p1', passwordHash: 'h1' }] },
      storage: { driver: 'postgres', url: 'postgres://u:p2@db/q' },
      redis: { url: 'redis://:p3@cache' },
      returnPath: { secret: 'p4' },
      unsubscribe: { secret: 'p5', previousSecrets: ['p6'] },
      api: { tokens: [{ name: 'ci', hash: 'p7' }] },
      webhooks: { url: 'https://hooks.example/in' },
    };
    const line = { event: 'config.loaded', config, req: { headers: { authorization: 'Bearer p8', host: 'x' } }, credentials: 'p9' };
    const redacted = redactSecrets(line);
    const text = JSON.stringify(redacted);
    for (let i = 1; i <= 9; i++) expect(text).not.toContain(`p${i}`);
    expect(redacted.config.smtp.users[0]).toEqual({ username: 'app', password: CENSOR, passwordHash: CENSOR });
    expect(redacted.config.api.tokens[0]).toEqual({ name: 'ci', hash: CENSOR });
    // A url elsewhere is no secret; the object logged is never changed.
    expect(redacted.config.webhooks.url).toBe('https://hooks.example/in');
    expect(redacted.req.headers.host).toBe('x');
    expect(config.storage.url).toBe('postgres://u:p2@db/q');
    expect(line.req.headers.authorization).toBe('Bearer p8');
  });

  it('returns the object itself when nothing in it is secret, and leaves buffers and dates unread', () => {
    const line = { event: 'message.delivered', queueId: 'q1', rcpt: 'a@example.com', attempt: 1, at: new Date(0), body: Buffer.from('password') };
    expect(redactSecrets(line)).toBe(line);
    const nested = { a: { b: [{ c: 1 }] } };
    expect(redactSecrets(nested)).toBe(nested);
  });

  it('walks an object that refers back to itself, or is shared, once per line, censoring at every depth', () => {
    const node: Record<string, unknown> = { level: { deeper: { password: 's3cret' } } };
    for (let i = 0; i < 10; i++) node[`link${i}`] = node;
    // Ten links at each of eight levels would be 10^8 paths if each were walked: this would not finish.
    const redacted = redactSecrets({ event: 'test.cycle', node });
    expect(redacted.node.level).toEqual({ deeper: { password: CENSOR } });
    expect(redacted.node.link3).toBe('[Circular]');
    expect(JSON.stringify(redacted)).not.toContain('s3cret');
    // The same object under two names: censored where its parent makes a field secret, kept elsewhere.
    const target = { url: 'postgres://u:s3cret@db/q' };
    const twice = redactSecrets({ storage: target, webhook: target });
    expect(twice.storage.url).toBe(CENSOR);
    expect(twice.webhook.url).toBe(target.url);
  });

  it('censors however large the line, in frozen objects, getters and class instances', () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ i }));
    expect(redactSecrets({ event: 'x', items, auth: { password: 's3cret' } }).auth.password).toBe(CENSOR);
    const config = Object.freeze({ smtp: Object.freeze({ users: Object.freeze([Object.freeze({ username: 'app', password: 's3cret' })]) }) });
    expect(JSON.stringify(redactSecrets({ config }))).not.toContain('s3cret');
    expect(JSON.stringify(redactSecrets({ get auth() { return { password: 's3cret' }; } }))).not.toContain('s3cret');
    class Credentials {
      constructor(readonly user: string, readonly password: string) {}
    }
    class Headers {
      authorization = 'Bearer s3cret';
    }
    const line = redactSecrets({ auth: new Credentials('u', 's3cret'), req: { headers: new Headers() } });
    expect(line.auth).toBeInstanceOf(Credentials);
    expect(JSON.stringify(line)).not.toContain('s3cret');
  });

  it('censors what the error serializer reads of an error: inherited fields, its cause, an AggregateError\'s errors, one of another realm', () => {
    const { lines, logger } = capturingLogger();
    const inherited = Object.assign(Object.create(Object.assign(new Error('base'), { password: 's3cret' })) as Error, { message: 'm' });
    logger.error({ event: 'test.inherited', err: inherited });
    const command = { name: 'auth', args: ['s3cret'] };
    logger.error({ event: 'test.cause', err: new Error('outer', { cause: Object.assign(new Error('inner'), { command }) }) });
    logger.error({ event: 'test.aggregate', err: new AggregateError([Object.assign(new Error('one'), { command })], 'all') });
    const foreign = vm.runInNewContext('Object.assign(new Error("vm"), { command: { name: "auth", args: ["s3cret"] } })') as Error;
    logger.error({ event: 'test.realm', err: foreign });
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).not.toContain('s3cret');
    expect(JSON.parse(lines[3]!)).toMatchObject({ err: { message: 'vm', command: { args: CENSOR } } });
  });

  it('keeps an error an error: its message, stack and class, with the secret censored', () => {
    const err = Object.assign(new TypeError('WRONGPASS'), { command: { name: 'auth', args: ['s3cret'] } });
    const redacted = redactSecrets({ err }).err;
    expect(redacted).toBeInstanceOf(TypeError);
    expect(redacted.message).toBe('WRONGPASS');
    expect(redacted.stack).toBe(err.stack);
    expect(redacted.command).toEqual({ name: 'auth', args: CENSOR });
    expect(err.command.args).toEqual(['s3cret']);
  });

  it('the logger censors a child logger\'s bindings too', () => {
    const { logger, lines } = capturingLogger();
    const child = logger.child({ component: 'x', auth: { password: 's3cret' } });
    child.info({ event: 'test.child' }, 'child');
    child.child({ session: 's1', pass: 's3cret' }).info({ event: 'test.grandchild' }, 'grandchild');
    child.setBindings({ pass: 's3cret' });
    child.info({ event: 'test.rebound' }, 'rebound');
    for (const line of lines) expect(line).not.toContain('s3cret');
    expect(JSON.parse(lines[0]!)).toMatchObject({ component: 'x', auth: { password: '[redacted]' } });
    expect(JSON.parse(lines[1]!)).toMatchObject({ component: 'x', auth: { password: '[redacted]' }, session: 's1', pass: '[redacted]' });
  });
});
