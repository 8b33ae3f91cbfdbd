import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { dkimConfigSchema, type DkimConfigInput } from '../../src/config/dkim-schema.ts';
import { createDkimKeyStore, readDkimKeys, type DkimKey, type DkimKeyStore, type DkimKeyStoreOptions } from '../../src/sender-domains/key-store.ts';
import { publicKeyMatches } from '../../src/sender-domains/dns-record.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createDkimKeyFiles, fixtureTxtResolver, generateDkimKey, readKeysOf, type DkimKeyFile, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { manualClock } from '../helpers/manual-clock.ts';

let files: DkimKeyFiles;
/** A second RSA key and Ed25519 key, for rotations. */
let rsa2: DkimKeyFile;
let ed2: DkimKeyFile;

beforeAll(async () => {
  files = await createDkimKeyFiles();
  rsa2 = await files.write('rsa2.pem', 'rsa');
  ed2 = await files.write('ed2.pem', 'ed25519');
});
afterAll(() => files.remove());

const stores: DkimKeyStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.stop()));
});

interface LogLine {
  level: number;
  event?: string;
  [key: string]: unknown;
}

function capture() {
  const lines: LogLine[] = [];
  const logger = createLogger('debug', new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { logger, lines, events: (event: string) => lines.filter((l) => l.event === event) };
}

function store(dkim: DkimConfigInput, extra: Partial<DkimKeyStoreOptions> = {}) {
  const log = capture();
  const created = createDkimKeyStore({
    keys: readKeysOf(dkimConfigSchema.parse(dkim)),
    resolver: fixtureTxtResolver({}),
    clock: manualClock(),
    logger: log.logger,
    ...extra,
  });
  stores.push(created);
  return { store: created, log };
}

const pOf = (record: string) => /p=([^;]+)/.exec(record)![1];
/** Where DNS publishes a selector of example.com. */
const name = (selector: string) => `${selector}._domainkey.example.com`;
/** example.com rotating its RSA key from `old` to `new`, beside an Ed25519 key (made in beforeAll, so read when called). */
const rotationConfig = (): DkimConfigInput => ({
  domains: {
    'example.com': {
      keys: [
        { selector: 'old', privateKey: files.rsa.path },
        { selector: 'ed', privateKey: files.ed25519.path },
        { selector: 'new', privateKey: rsa2.path },
      ],
    },
  },
});
const selectors = (s: DkimKeyStore, domain = 'example.com') => s.keysFor(domain).map((k) => k.selector);

/** The problems reading the keys of a `dkim:` config finds, as the resolution reads them. */
function loadProblems(dkim: DkimConfigInput): string[] {
  return readDkimKeys(dkimConfigSchema.parse(dkim)).problems;
}

describe('loading keys', () => {
  it('loads RSA and Ed25519 keys with their algorithm and DNS p= value', () => {
    const { store: s } = store({
      domains: { 'example.com': { keys: [{ selector: 'rsa1', privateKey: files.rsa.path }, { selector: 'ed1', privateKey: files.ed25519.path }] } },
    });
    const keys = s.keysFor('example.com');
    expect(keys.map((k) => [k.domain, k.selector, k.algorithm, k.bits])).toEqual([
      ['example.com', 'rsa1', 'rsa-sha256', 2048],
      ['example.com', 'ed1', 'ed25519-sha256', null],
    ]);
    expect(keys[0]!.publicKey).toBe(pOf(files.rsa.record));
    expect(keys[1]!.publicKey).toBe(pOf(files.ed25519.record));
    expect(keys[1]!.privateKey.asymmetricKeyType).toBe('ed25519');
    expect(s.keysFor('other.example')).toEqual([]);
  });

  it('refuses unreadable, unparseable, too short and unsupported keys, naming each path', async () => {
    const notPem = files.dir.file('not-a-key.pem');
    await writeFile(notPem, 'hello');
    const short = await files.write('rsa-512.pem', 'rsa', 512);
    const ec = files.dir.file('ec.pem');
    await writeFile(ec, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const problems = loadProblems({
      domains: {
        'example.com': {
          keys: [
            { selector: 'missing', privateKey: files.dir.file('missing.pem') },
            { selector: 'garbage', privateKey: notPem },
            { selector: 'short', privateKey: short.path },
            { selector: 'ok', privateKey: files.rsa.path },
            { selector: 'ec', privateKey: ec },
          ],
        },
      },
    });
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/^dkim\.domains\.example\.com\.keys\[0\]\.privateKey: cannot read file: ENOENT/);
    expect(problems[1]).toMatch(/^dkim\.domains\.example\.com\.keys\[1\]\.privateKey: not a PEM private key/);
    expect(problems[2]).toBe('dkim.domains.example.com.keys[2].privateKey: RSA key of 512 bits is too short (at least 1024; use 2048)');
    expect(problems[3]).toBe('dkim.domains.example.com.keys[4].privateKey: unsupported key type ec (DKIM signs with RSA or Ed25519)');
  });

  it('warns about RSA keys shorter than 2048 bits but uses them', async () => {
    const weak = await files.write('rsa-1024.pem', 'rsa', 1024);
    const { store: s, log } = store({ domains: { 'example.com': { keys: [{ selector: 'weak', privateKey: weak.path }] } } });
    expect(selectors(s)).toEqual(['weak']);
    expect(log.events('dkim.key.weak')).toMatchObject([{ selector: 'weak', bits: 1024 }]);
  });
});

describe('reloading keys', () => {
  /** A key file of its own, so replacing it does not disturb other tests. */
  const ownKey = (name: string, type: 'rsa' | 'ed25519' = 'ed25519') => files.write(name, type);

  /** Replaces the file the way editors and deploy tools do: write elsewhere, rename over it. */
  async function replace(path: string, pem: string) {
    await writeFile(`${path}.tmp`, pem);
    await rename(`${path}.tmp`, path);
  }

  it('rereads a key whose file was replaced, on the next file check', async () => {
    const file = await ownKey('reload-a.pem');
    const clock = manualClock(1_000_000);
    const { store: s, log } = store({ domains: { 'example.com': { keys: [{ selector: 'k', privateKey: file.path }] } } }, { clock });
    expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(file.record));

    await s.checkFiles();
    expect(log.events('dkim.key.reloaded')).toHaveLength(0);

    const next = generateDkimKey('ed25519');
    await replace(file.path, next.pem);
    clock.advance(5_000);
    await s.checkFiles();
    expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(next.record));
    expect(s.status()[0]).toMatchObject({ selector: 'k', loadedAt: 1_005_000, error: null, signing: true });
    expect(log.events('dkim.key.reloaded')).toMatchObject([{ selector: 'k', domain: 'example.com' }]);
  });

  it('picks up a replaced file by itself once started', async () => {
    const file = await ownKey('reload-timer.pem', 'rsa');
    const { store: s } = store({ domains: { 'example.com': { keys: [{ selector: 'k', privateKey: file.path }] } } }, { fileCheckIntervalMs: 20 });
    await s.start();
    const next = generateDkimKey('rsa');
    await replace(file.path, next.pem);
    await vi.waitFor(() => expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(next.record)), { timeout: 5_000, interval: 10 });
    await s.stop();
    await s.stop();
  });

  it('keeps the old key when the new file is bad, logs it once, and recovers when the file is fixed', async () => {
    const file = await ownKey('reload-bad.pem');
    const { store: s, log } = store({ domains: { 'example.com': { keys: [{ selector: 'k', privateKey: file.path }] } } });

    await replace(file.path, '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n');
    await s.checkFiles();
    await s.checkFiles();
    expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(file.record));
    expect(log.events('dkim.reload.failed')).toHaveLength(1);
    expect(log.events('dkim.reload.failed')[0]!.level).toBe(50);
    expect(s.status()[0]!.error).toMatch(/^dkim\.domains\.example\.com\.keys\[0\]\.privateKey: not a PEM private key/);

    const fixed = generateDkimKey('ed25519');
    await replace(file.path, fixed.pem);
    await s.checkFiles();
    expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(fixed.record));
    expect(s.status()[0]!.error).toBeNull();
  });

  it('keeps the key of a deleted file, and reports it once', async () => {
    const file = await ownKey('reload-deleted.pem');
    const { store: s, log } = store({
      domains: { 'example.com': { keys: [{ selector: 'k', privateKey: file.path }, { selector: 'r', privateKey: files.rsa.path }] } },
    });
    await rm(file.path);
    await s.checkFiles();
    expect(s.status()[0]!.error).toMatch(/^dkim\.domains\.example\.com\.keys\[0\]\.privateKey: cannot read file: ENOENT/);
    expect(selectors(s)).toEqual(['k', 'r']);
    expect(s.keysFor('example.com')[0]!.publicKey).toBe(pOf(file.record));
    // Every later file check finds it missing too; that is not worth another error line.
    await s.checkFiles();
    await s.checkFiles();
    expect(log.events('dkim.reload.failed')).toHaveLength(1);
  });
});

describe('stage (a reloaded configuration)', () => {
  it('swaps the keys only at the commit, and a new domain signs from then on', async () => {
    const { store: s } = store({ domains: { 'example.com': { keys: [{ selector: 'r', privateKey: files.rsa.path }] } } });
    const commit = await s.stage(readKeysOf(dkimConfigSchema.parse({ domains: { 'example.org': { keys: [{ selector: 'e', privateKey: files.ed25519.path }] } } })));
    expect(selectors(s)).toEqual(['r']);
    expect(selectors(s, 'example.org')).toEqual([]);
    commit();
    expect(selectors(s)).toEqual([]);
    expect(selectors(s, 'example.org')).toEqual(['e']);
    expect(s.status().map((k) => [k.domain, k.selector])).toEqual([['example.org', 'e']]);
  });

  it('looks a new key of a rotation up before the commit, and keeps what DNS said of the keys it held', async () => {
    const resolver = fixtureTxtResolver({ [name('old')]: files.rsa.record, [name('new')]: rsa2.record });
    const clock = manualClock(1_000_000);
    const { store: s } = store({ domains: { 'example.com': { keys: [{ selector: 'old', privateKey: files.rsa.path }, { selector: 'ed', privateKey: files.ed25519.path }] } } }, { resolver, clock });
    await s.start();
    clock.advance(60_000);
    const commit = await s.stage(readKeysOf(dkimConfigSchema.parse(rotationConfig())));
    expect(resolver.lookups.sort()).toEqual([name('new'), name('old')]);
    commit();
    // The new key's record is published: it signs from the first message after the commit.
    expect(selectors(s)).toEqual(['new', 'ed']);
    expect(s.status().map((k) => [k.selector, k.loadedAt])).toEqual([
      ['old', 1_000_000],
      ['ed', 1_000_000],
      ['new', 1_060_000],
    ]);
  });
});

describe('rotation', () => {
  function rotating(records: Record<string, string | Error>, extra: Partial<DkimKeyStoreOptions> = {}) {
    const resolver = fixtureTxtResolver(records);
    const created = store(rotationConfig(), { resolver, ...extra });
    return { ...created, resolver };
  }

  it('signs with the newest key whose record is published', async () => {
    const { store: s, resolver } = rotating({ [name('old')]: files.rsa.record, [name('new')]: rsa2.record });
    // Before DNS was looked at, the oldest signs.
    expect(selectors(s)).toEqual(['old', 'ed']);
    await s.start();
    expect(selectors(s)).toEqual(['new', 'ed']);
    // The Ed25519 key is alone in its algorithm: it signs without a lookup.
    expect(resolver.lookups.sort()).toEqual([name('new'), name('old')]);
    expect(s.status().map((k) => [k.selector, k.published, k.signing])).toEqual([
      ['old', true, false],
      ['ed', null, true],
      ['new', true, true],
    ]);
  });

  it('keeps the oldest while the new record is missing or has another key, and when none is published', async () => {
    const missing = rotating({ [name('old')]: files.rsa.record });
    await missing.store.start();
    expect(selectors(missing.store)).toEqual(['old', 'ed']);

    const otherKey = rotating({ [name('old')]: files.rsa.record, [name('new')]: files.rsa.record });
    await otherKey.store.start();
    expect(selectors(otherKey.store)).toEqual(['old', 'ed']);

    const none = rotating({});
    await none.store.start();
    expect(selectors(none.store)).toEqual(['old', 'ed']);
  });

  it('switches when the record appears, keeps the state through a failed lookup, goes back when it is removed', async () => {
    const records: Record<string, string | Error> = { [name('old')]: files.rsa.record };
    const { store: s, log } = rotating(records);
    await s.start();
    expect(selectors(s)).toEqual(['old', 'ed']);

    records[name('new')] = rsa2.record;
    await s.checkDns();
    expect(selectors(s)).toEqual(['new', 'ed']);
    expect(log.events('dkim.key.changed')).toMatchObject([{ domain: 'example.com', algorithm: 'rsa-sha256', from: 'old', to: 'new' }]);

    records[name('new')] = Object.assign(new Error('queryTxt ESERVFAIL'), { code: 'ESERVFAIL' });
    await s.checkDns();
    expect(selectors(s)).toEqual(['new', 'ed']);
    expect(log.events('dkim.lookup.failed')).toMatchObject([{ name: name('new'), code: 'ESERVFAIL' }]);

    delete records[name('new')];
    await s.checkDns();
    expect(selectors(s)).toEqual(['old', 'ed']);
  });

  it('looks DNS up again on its timer', async () => {
    const records: Record<string, string> = {};
    const { store: s } = rotating(records, { dnsCheckIntervalMs: 20 });
    await s.start();
    expect(selectors(s)).toEqual(['old', 'ed']);
    records[name('new')] = rsa2.record;
    await vi.waitFor(() => expect(selectors(s)).toEqual(['new', 'ed']), { timeout: 5_000, interval: 10 });
  });

  it('rotates each algorithm on its own', async () => {
    const resolver = fixtureTxtResolver({ 'ed-new._domainkey.example.com': ed2.record });
    const { store: s } = store(
      {
        domains: {
          'example.com': {
            keys: [
              { selector: 'rsa', privateKey: files.rsa.path },
              { selector: 'ed-old', privateKey: files.ed25519.path },
              { selector: 'ed-new', privateKey: ed2.path },
            ],
          },
        },
      },
      { resolver },
    );
    await s.start();
    expect(selectors(s)).toEqual(['rsa', 'ed-new']);
    expect(resolver.lookups.sort()).toEqual(['ed-new._domainkey.example.com', 'ed-old._domainkey.example.com']);
  });

  it('signs with a single key without looking DNS up, and has no DNS timer then', async () => {
    const resolver = fixtureTxtResolver({});
    const { store: s } = store({ domains: { 'example.com': { keys: [{ selector: 'only', privateKey: files.rsa.path }] } } }, { resolver, dnsCheckIntervalMs: 5 });
    await s.start();
    await s.start();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(selectors(s)).toEqual(['only']);
    expect(resolver.lookups).toEqual([]);
  });

  it('waits for DNS to confirm a replaced key in rotation', async () => {
    const file = await files.write('rotating-replaced.pem', 'rsa');
    const records: Record<string, string> = { [name('old')]: files.rsa.record, [name('new')]: file.record };
    const { store: s } = store(
      {
        domains: { 'example.com': { keys: [{ selector: 'old', privateKey: files.rsa.path }, { selector: 'new', privateKey: file.path }] } },
      },
      { resolver: fixtureTxtResolver(records) },
    );
    await s.start();
    expect(selectors(s)).toEqual(['new']);

    // The file now holds a key DNS does not publish: the published old key signs again.
    const next = generateDkimKey('rsa');
    await writeFile(file.path, next.pem);
    await s.checkFiles();
    await s.checkDns();
    expect(selectors(s)).toEqual(['old']);

    records[name('new')] = next.record;
    await s.checkDns();
    expect(selectors(s)).toEqual(['new']);
  });
});

describe('publicKeyMatches (what the key store checks a record with)', () => {
  it('matches the published p= of the same key only, in SPKI or PKCS#1 form, split or spaced', () => {
    const { store: s } = store({
      domains: { 'example.com': { keys: [{ selector: 'r', privateKey: files.rsa.path }, { selector: 'e', privateKey: files.ed25519.path }] } },
    });
    const [rsaKey, edKey] = s.keysFor('example.com') as [DkimKey, DkimKey];
    expect(publicKeyMatches(files.rsa.record, rsaKey.privateKey)).toBe(true);
    expect(publicKeyMatches(files.rsa.record.replace('v=DKIM1; k=rsa; ', ''), rsaKey.privateKey)).toBe(true);
    expect(publicKeyMatches(files.rsa.record.replace(/p=(.{40})/, 'p=$1 \t'), rsaKey.privateKey)).toBe(true);
    expect(publicKeyMatches(rsa2.record, rsaKey.privateKey)).toBe(false);
    expect(publicKeyMatches(files.rsa.record.replace('k=rsa', 'k=ed25519'), rsaKey.privateKey)).toBe(false);
    expect(publicKeyMatches(files.rsa.record.replace('v=DKIM1', 'v=DKIM2'), rsaKey.privateKey)).toBe(false);
    expect(publicKeyMatches('v=DKIM1; k=rsa; p=', rsaKey.privateKey)).toBe(false);

    const pkcs1 = createPublicKey(files.rsa.pem).export({ type: 'pkcs1', format: 'der' }).toString('base64');
    expect(publicKeyMatches(`v=DKIM1; k=rsa; p=${pkcs1}`, rsaKey.privateKey)).toBe(true);

    expect(publicKeyMatches(files.ed25519.record, edKey.privateKey)).toBe(true);
    expect(publicKeyMatches(files.ed25519.record.replace('k=ed25519', 'k=rsa'), edKey.privateKey)).toBe(false);
    expect(publicKeyMatches(ed2.record, edKey.privateKey)).toBe(false);
  });
});
