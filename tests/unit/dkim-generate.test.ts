import { createPrivateKey } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import type { DKIMSignOptions } from 'mailauth';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimRecordName, dkimTxtValue } from '../../src/sender-domains/dns-record.ts';
import { mailauthResolver } from '../../src/sender-domains/domain-check-dns.ts';
import { dkimKeyPath, generateDkimKey, KeyFileExistsError, selectorProblem, writePrivateKeyFile, type DkimAlgorithm } from '../../src/sender-domains/key-generation.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const MESSAGE = ['From: Alice <alice@example.com>', 'To: bob@example.net', 'Subject: Key test', 'Date: Mon, 02 Jun 2025 10:00:00 +0000', 'Message-ID: <k1@example.com>', '', 'Hello.', ''].join('\r\n');

describe('DKIM key generation', () => {
  it('makes RSA-2048 keys by default, PKCS#8 PEM', async () => {
    const key = await generateDkimKey({ algorithm: 'rsa-sha256' });
    expect(key.bits).toBe(2048);
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const parsed = createPrivateKey(key.privateKeyPem);
    expect(parsed.asymmetricKeyType).toBe('rsa');
    expect(parsed.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(key.publicKey.type).toBe('public');
  });

  it('makes Ed25519 keys, and other RSA sizes within limits', async () => {
    const ed = await generateDkimKey({ algorithm: 'ed25519-sha256' });
    expect(ed.bits).toBeNull();
    expect(createPrivateKey(ed.privateKeyPem).asymmetricKeyType).toBe('ed25519');
    const big = await generateDkimKey({ algorithm: 'rsa-sha256', bits: 3072 });
    expect(createPrivateKey(big.privateKeyPem).asymmetricKeyDetails?.modulusLength).toBe(3072);
  });

  it('refuses sizes receivers would not accept, and sizes for Ed25519', async () => {
    await expect(generateDkimKey({ algorithm: 'rsa-sha256', bits: 512 })).rejects.toThrow(/from 1024 to 4096/);
    await expect(generateDkimKey({ algorithm: 'rsa-sha256', bits: 8192 })).rejects.toThrow(/from 1024 to 4096/);
    await expect(generateDkimKey({ algorithm: 'rsa-sha256', bits: 2047 })).rejects.toThrow(/multiple of 8/);
    await expect(generateDkimKey({ algorithm: 'ed25519-sha256', bits: 2048 })).rejects.toThrow(/RSA only/);
  });

  it.each<DkimAlgorithm>(['rsa-sha256', 'ed25519-sha256'])('a message signed with a new %s key verifies against the record it prints', async (algorithm) => {
    const key = await generateDkimKey({ algorithm });
    const resolver = createFixtureResolver({ [dkimRecordName('s1', 'example.com')]: { txt: [dkimTxtValue(key.publicKey)] } });
    // mailauth's declared options want top-level key fields, but it signs from signatureData.
    const options = { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'example.com', selector: 's1', privateKey: key.privateKeyPem, algorithm }] };
    const signed = await dkimSign(MESSAGE, options as unknown as DKIMSignOptions);
    expect(signed.errors).toEqual([]);
    const verified = await dkimVerify(Buffer.from(signed.signatures + MESSAGE), { resolver: mailauthResolver(resolver) as never });
    expect(verified.results.map((r) => [r.signingDomain, r.selector, r.status.result])).toEqual([['example.com', 's1', 'pass']]);

    // And fails against another key's record, so the check above is not vacuous.
    const other = await generateDkimKey({ algorithm });
    resolver.set(dkimRecordName('s1', 'example.com'), { txt: [dkimTxtValue(other.publicKey)] });
    const refused = await dkimVerify(Buffer.from(signed.signatures + MESSAGE), { resolver: mailauthResolver(resolver) as never });
    expect(refused.results[0]?.status.result).toBe('fail');
  });

  it('accepts selectors made of DNS labels only', () => {
    expect(selectorProblem('s2025')).toBeNull();
    expect(selectorProblem('2025.eu-west')).toBeNull();
    for (const bad of ['../etc', 'a/b', '-s1', 's1-', 'a..b', '', 'x'.repeat(64), 's 1']) expect(selectorProblem(bad), bad).not.toBeNull();
  });
});

describe('private key files', () => {
  let dir: TempDir;
  beforeAll(async () => {
    dir = await createTempDir('rookery-dkim-keys');
  });
  afterAll(() => dir.remove());

  it('writes <domain>.<selector>.pem readable by its owner only, creating the directory', async () => {
    const path = dkimKeyPath(dir.file('new', 'dkim'), 'Example.com', 's1');
    expect(path).toBe(dir.file('new', 'dkim', 'example.com.s1.pem'));
    await writePrivateKeyFile(path, 'KEY ONE\n');
    expect(await readFile(path, 'utf8')).toBe('KEY ONE\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(dir.file('new', 'dkim'))).mode & 0o777).toBe(0o700);
    expect(await readdir(dir.file('new', 'dkim'))).toEqual(['example.com.s1.pem']);
  });

  it('keeps an existing key unless forced, and leaves no temporary file behind', async () => {
    await mkdir(dir.file('keep'));
    const path = dir.file('keep', 'example.com.s1.pem');
    await writeFile(path, 'OLD\n', { mode: 0o644 });
    await expect(writePrivateKeyFile(path, 'NEW\n')).rejects.toBeInstanceOf(KeyFileExistsError);
    expect(await readFile(path, 'utf8')).toBe('OLD\n');
    expect(await readdir(dir.file('keep'))).toEqual(['example.com.s1.pem']);

    await writePrivateKeyFile(path, 'NEW\n', { force: true });
    expect(await readFile(path, 'utf8')).toBe('NEW\n');
    // Replaced, not rewritten in place: the old file's looser mode is gone too.
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir.file('keep'))).toEqual(['example.com.s1.pem']);
  });
});
