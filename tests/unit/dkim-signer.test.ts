import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { dkimConfigSchema, type DkimConfigInput } from '../../src/config/dkim-schema.ts';
import { createDkimKeyStore, type DkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { explainSender } from '../../src/sender-domains/sender-explanation.ts';
import { createDkimSigner, type UnsignedReason } from '../../src/sender-domains/signer.ts';
import { OVER_SIGNED_HEADERS } from '../../src/sender-domains/signature-fields.ts';
import { createDkimKeyFiles, dkimSignatureTags, fixtureTxtResolver, readKeysOf, verifyWithMailauth, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { manualClock } from '../helpers/manual-clock.ts';

let files: DkimKeyFiles;
beforeAll(async () => {
  files = await createDkimKeyFiles();
});
afterAll(() => files.remove());

const stores: DkimKeyStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.stop()));
});

const logger = createLogger('silent');
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

function setup(dkim: DkimConfigInput) {
  const config = dkimConfigSchema.parse(dkim);
  const clock = manualClock(T0);
  const keys = createDkimKeyStore({ keys: readKeysOf(config), resolver: fixtureTxtResolver({}), clock, logger });
  stores.push(keys);
  const unsigned: UnsignedReason[] = [];
  const signer = createDkimSigner({ keys, config, clock, logger, onUnsigned: (reason) => unsigned.push(reason) });
  // What GET /v1/explain says a sender's mail would get (no return paths configured here).
  const explain = (sender: string) => explainSender(sender, { dkim: config, keys, returnPath: { secret: null, domains: {} } }).dkim;
  return { signer, unsigned, clock, explain };
}

/** One RSA key per domain, selector "s1"; the records every test's verifier is given. */
function records(...domains: string[]): Record<string, string> {
  return Object.fromEntries(domains.map((d) => [`s1._domainkey.${d}`, files.rsa.record]));
}
const rsaKey = () => ({ keys: [{ selector: 's1', privateKey: files.rsa.path }] });

function message(from: string, extraHeaders = ''): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: Bob <bob@example.org>\r\nSubject: Hello\r\nDate: Mon, 01 Jun 2026 12:00:00 +0000\r\n` +
      `Message-ID: <m1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n${extraHeaders}\r\nHi Bob.\r\n`,
  );
}

const at = new Date(T0 + 60_000);

describe('choosing the signing domain', () => {
  it('signs with the From domain when it has keys', async () => {
    const { signer, unsigned } = setup({ domains: { 'example.com': rsaKey() } });
    const signed = await signer.sign(message('Alice <alice@Example.COM>'));
    expect(signed.domain).toBe('example.com');
    expect(signed.selectors).toEqual(['s1']);
    expect(dkimSignatureTags(signed.message)).toMatchObject([{ d: 'example.com', s: 's1', a: 'rsa-sha256', c: 'relaxed/relaxed' }]);
    expect(await verifyWithMailauth(signed.message, records('example.com'), at)).toMatchObject([{ result: 'pass', domain: 'example.com' }]);
    expect(unsigned).toEqual([]);
  });

  it('signs a subdomain with the closest configured parent that allows subdomains', async () => {
    const { signer } = setup({
      domains: { 'example.com': { ...rsaKey(), subdomains: true }, 'b.example.com': { ...rsaKey(), subdomains: false }, 'c.example.com': { ...rsaKey(), subdomains: true } },
    });
    expect((await signer.sign(message('x@news.example.com'))).domain).toBe('example.com');
    // b.example.com is closer but does not sign for its subdomains.
    expect((await signer.sign(message('x@a.b.example.com'))).domain).toBe('example.com');
    expect((await signer.sign(message('x@a.c.example.com'))).domain).toBe('c.example.com');
    const signed = await signer.sign(message('x@deep.a.c.example.com'));
    expect(signed.domain).toBe('c.example.com');
    expect(await verifyWithMailauth(signed.message, records('c.example.com'), at)).toMatchObject([{ result: 'pass' }]);
  });

  it('does not sign subdomains unless told to', async () => {
    const { signer, unsigned } = setup({ domains: { 'example.com': rsaKey() } });
    const input = message('x@news.example.com');
    const result = await signer.sign(input);
    expect(result).toEqual({ message: input, domain: null, selectors: [] });
    expect(unsigned).toEqual(['no-key']);
  });

  it('signs mail of unknown domains with the fallback domain', async () => {
    const { signer, unsigned } = setup({ domains: { 'example.com': rsaKey(), 'mail.example.net': rsaKey() }, fallback: 'mail.example.net' });
    const signed = await signer.sign(message('someone@customer.example'));
    expect(signed.domain).toBe('mail.example.net');
    expect(await verifyWithMailauth(signed.message, records('mail.example.net'), at)).toMatchObject([{ result: 'pass', domain: 'mail.example.net' }]);
    expect(unsigned).toEqual([]);
  });

  it('leaves mail of unknown domains unsigned without a fallback, and counts why', async () => {
    const { signer, unsigned } = setup({ domains: { 'example.com': rsaKey() } });
    const input = message('someone@customer.example');
    const result = await signer.sign(input);
    expect(result.message).toBe(input);
    expect(result.domain).toBeNull();
    const noFrom = Buffer.from('To: bob@example.org\r\nSubject: no from\r\n\r\nbody\r\n');
    expect((await signer.sign(noFrom)).message).toBe(noFrom);
    expect(unsigned).toEqual(['no-key', 'no-from-domain']);
  });

  it('signs nothing when no domain is configured', async () => {
    const { signer, unsigned } = setup({});
    expect((await signer.sign(message('alice@example.com'))).domain).toBeNull();
    expect(unsigned).toEqual(['no-key']);
  });
});

describe('explaining the signature a sender would get (GET /v1/explain)', () => {
  it('names the domain and selectors the signer then uses: its own keys, a parent covering subdomains, the fallback', async () => {
    const { explain, signer } = setup({
      domains: {
        'example.com': { keys: [{ selector: 'rsa1', privateKey: files.rsa.path }, { selector: 'ed1', privateKey: files.ed25519.path }] },
        'parent.example': { ...rsaKey(), subdomains: true },
      },
      fallback: 'parent.example',
    });
    const cases: Array<[string, string, string, string[]]> = [
      ['news@example.com', 'domain', 'example.com', ['rsa1', 'ed1']],
      ['app@mail.parent.example', 'parent', 'parent.example', ['s1']],
      ['app@elsewhere.example', 'fallback', 'parent.example', ['s1']],
    ];
    for (const [sender, source, domain, selectors] of cases) {
      const explained = explain(sender);
      expect(explained, sender).toMatchObject({ fromDomain: sender.split('@')[1], source, domain, selectors });
      const signed = await signer.sign(message(sender));
      expect({ domain: signed.domain, selectors: signed.selectors }, sender).toEqual({ domain: explained.domain, selectors: explained.selectors });
    }
    expect(explain('news@example.com').detail).toBe("signed with d=example.com, its own key: rsa1 (rsa-sha256), ed1 (ed25519-sha256) (assuming the From header's domain is example.com)");
    expect(explain('app@mail.parent.example').detail).toContain('dkim.domains.parent.example.subdomains');
    expect(explain('app@elsewhere.example').detail).toContain('dkim.fallback: elsewhere.example has no key of its own');
  });

  it('says when the mail leaves unsigned', async () => {
    const { explain, signer } = setup({ domains: { 'example.com': rsaKey() } });
    expect(explain('app@other.example')).toEqual({
      fromDomain: 'other.example',
      domain: null,
      source: 'none',
      selectors: [],
      detail: "no DKIM key for other.example and no dkim.fallback: unsigned (assuming the From header's domain is other.example)",
    });
    expect((await signer.sign(message('app@other.example'))).domain).toBeNull();
  });
});

describe('the signature', () => {
  it('carries t= from the clock, and x= when an expiry is configured', async () => {
    const withExpiry = setup({ domains: { 'example.com': rsaKey() }, expiry: '7d' });
    const [tags] = dkimSignatureTags((await withExpiry.signer.sign(message('a@example.com'))).message);
    expect(tags).toMatchObject({ t: String(T0 / 1000), x: String(T0 / 1000 + 7 * 86_400) });

    const signed = await withExpiry.signer.sign(message('a@example.com'));
    expect(await verifyWithMailauth(signed.message, records('example.com'), at)).toMatchObject([{ result: 'pass' }]);
    // Past x= the signature no longer verifies.
    const late = await verifyWithMailauth(signed.message, records('example.com'), new Date(T0 + 8 * 86_400_000));
    expect(late[0]!.result).not.toBe('pass');

    const without = setup({ domains: { 'example.com': rsaKey() } });
    const [plain] = dkimSignatureTags((await without.signer.sign(message('a@example.com'))).message);
    expect(plain!.t).toBe(String(T0 / 1000));
    expect(plain).not.toHaveProperty('x');
  });

  it('signs twice with an RSA and an Ed25519 key', async () => {
    const { signer } = setup({
      domains: { 'example.com': { keys: [{ selector: 'rsa', privateKey: files.rsa.path }, { selector: 'ed', privateKey: files.ed25519.path }] } },
    });
    const signed = await signer.sign(message('a@example.com'));
    expect(signed.selectors).toEqual(['rsa', 'ed']);
    const verdicts = await verifyWithMailauth(
      signed.message,
      { 'rsa._domainkey.example.com': files.rsa.record, 'ed._domainkey.example.com': files.ed25519.record },
      at,
    );
    expect(verdicts.map((v) => [v.selector, v.algorithm, v.result])).toEqual([
      ['rsa', 'rsa-sha256', 'pass'],
      ['ed', 'ed25519-sha256', 'pass'],
    ]);
  });

  it('signs the message in wire form: an LF-only message comes back with CRLF and verifies', async () => {
    const { signer } = setup({ domains: { 'example.com': rsaKey() } });
    const lf = Buffer.from(message('a@example.com').toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const signed = await signer.sign(lf);
    expect(signed.message.toString('latin1')).not.toMatch(/[^\r]\n/);
    expect(signed.message.toString('latin1').endsWith('\r\nHi Bob.\r\n')).toBe(true);
    expect(await verifyWithMailauth(signed.message, records('example.com'), at)).toMatchObject([{ result: 'pass' }]);
  });

  it('signs the headers that matter, not trace fields', async () => {
    const { signer } = setup({ domains: { 'example.com': rsaKey() } });
    const input = Buffer.concat([
      Buffer.from('Received: from app (app [10.0.0.1]) by mta; Mon, 01 Jun 2026 12:00:00 +0000\r\n'),
      message('a@example.com', 'List-Unsubscribe: <https://example.com/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nX-Mailer: app\r\n'),
    ]);
    const [tags] = dkimSignatureTags((await signer.sign(input)).message);
    const names = tags!.h!.toLowerCase().split(':');
    expect(names).toEqual(expect.arrayContaining(['list-unsubscribe', 'list-unsubscribe-post']));
    expect(names).not.toContain('received');
    expect(names).not.toContain('x-mailer');
  });
});

describe('over-signing', () => {
  const count = (names: string[], name: string) => names.filter((n) => n === name.toLowerCase()).length;

  it('names each over-signed field once more than it occurs', async () => {
    const { signer } = setup({ domains: { 'example.com': rsaKey() } });
    // Two To fields (allowed by nothing, seen anyway); no Reply-To.
    const signed = await signer.sign(message('a@example.com', 'To: Carol <carol@example.org>\r\nCc: dave@example.org\r\n'));
    const names = dkimSignatureTags(signed.message)[0]!.h!.toLowerCase().split(':');
    const expected: Record<string, number> = { from: 2, to: 3, subject: 2, date: 2, 'message-id': 2, 'reply-to': 1, 'mime-version': 2, 'content-type': 2, cc: 1 };
    for (const [name, n] of Object.entries(expected)) expect([name, count(names, name)]).toEqual([name, n]);
    expect(OVER_SIGNED_HEADERS.map((h) => h.toLowerCase()).sort()).toEqual(Object.keys(expected).filter((n) => n !== 'cc').sort());
    expect(await verifyWithMailauth(signed.message, records('example.com'), at)).toMatchObject([{ result: 'pass' }]);
  });

  it('over-signs List-Unsubscribe and List-Unsubscribe-Post when present, so another link added fails verification', async () => {
    const { signer } = setup({ domains: { 'example.com': rsaKey() } });
    const fields = 'List-Unsubscribe: <https://example.com/u/TOKEN>,\r\n <mailto:unsub@example.com>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n';
    const signed = (await signer.sign(message('a@example.com', fields))).message;
    const names = dkimSignatureTags(signed)[0]!.h!.toLowerCase().split(':');
    expect([count(names, 'list-unsubscribe'), count(names, 'list-unsubscribe-post')]).toEqual([2, 2]);
    const result = async (m: Buffer) => (await verifyWithMailauth(m, records('example.com'), at))[0]!.result;
    expect(await result(signed)).toBe('pass');
    const split = signed.indexOf('\r\n\r\n') + 2;
    for (const field of ['List-Unsubscribe: <https://evil.example/u/1>', 'List-Unsubscribe-Post: List-Unsubscribe=One-Click']) {
      expect([field, await result(Buffer.concat([Buffer.from(`${field}\r\n`), signed]))]).toEqual([field, 'fail']);
      expect([field, await result(Buffer.concat([signed.subarray(0, split), Buffer.from(`${field}\r\n`), signed.subarray(split)]))]).toEqual([field, 'fail']);
    }
    // Mail without them does not name them: a list that adds its own does not break the signature for that.
    const plain = dkimSignatureTags((await signer.sign(message('a@example.com'))).message)[0]!.h!.toLowerCase().split(':');
    expect([count(plain, 'list-unsubscribe'), count(plain, 'list-unsubscribe-post')]).toEqual([0, 0]);
  });

  it('fails verification when a Subject, From, To or Reply-To is added, anywhere in the header', async () => {
    const { signer } = setup({ domains: { 'example.com': rsaKey() } });
    const signed = (await signer.sign(message('a@example.com'))).message;
    const split = signed.indexOf('\r\n\r\n') + 2;
    const top = (field: string) => Buffer.concat([Buffer.from(`${field}\r\n`), signed]);
    const bottom = (field: string) => Buffer.concat([signed.subarray(0, split), Buffer.from(`${field}\r\n`), signed.subarray(split)]);
    const result = async (m: Buffer) => (await verifyWithMailauth(m, records('example.com'), at))[0]!.result;

    // The check itself: a field that is not signed can be added without breaking anything.
    expect(await result(top('X-Added: 1'))).toBe('pass');
    for (const field of ['Subject: Urgent: reset your password', 'From: ceo@example.com', 'To: victim@example.org', 'Reply-To: thief@evil.example']) {
      expect([field, 'top', await result(top(field))]).toEqual([field, 'top', 'fail']);
      expect([field, 'bottom', await result(bottom(field))]).toEqual([field, 'bottom', 'fail']);
    }
  });
});
