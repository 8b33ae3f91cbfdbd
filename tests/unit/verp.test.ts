import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newQueueId } from '../../src/engine/queue-id.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { explainSender } from '../../src/sender-domains/sender-explanation.ts';
import { fixtureTxtResolver } from '../helpers/dkim-keys.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { dkimConfigSchema } from '../../src/config/dkim-schema.ts';
import { MAX_VERP_LOCAL_PART_LENGTH, type ReturnPathConfig } from '../../src/config/return-path-schema.ts';
import {
  bounceDomains,
  parseVerpAddress,
  returnPathDomainOf,
  returnPathFor,
  verpAddress,
} from '../../src/sender-domains/verp.ts';

const SECRET = 'an-operator-secret-of-at-least-32-characters';
const DOMAIN = 'bounces.example.com';
const MAX_MESSAGE_ID = 'f'.repeat(32);

/** The documented tag, computed independently: the first 50 bits of the HMAC as 10 base32 letters. */
function expectedTag(messageId: string, recipientId: number, secret = SECRET): string {
  const mac = createHmac('sha256', secret).update(`${messageId}.${recipientId}`).digest();
  const first50 = BigInt(`0x${mac.subarray(0, 7).toString('hex')}`) >> 6n;
  let tag = '';
  for (let i = 9; i >= 0; i--) tag += 'abcdefghijklmnopqrstuvwxyz234567'[Number((first50 >> BigInt(i * 5)) & 31n)];
  return tag;
}

function address(messageId: string, recipientId: number, domain = DOMAIN): string {
  return verpAddress({ messageId, recipientId, domain, secret: SECRET });
}

/** Replaces the local part's segment `index` (0 prefix+message id, 1 recipient, 2 tag). */
function withSegment(addr: string, index: number, value: string): string {
  const [local, domain] = addr.split('@') as [string, string];
  const parts = local.split('.');
  parts[index] = value;
  return `${parts.join('.')}@${domain}`;
}

// A deterministic spread of recipient ids: small, base-36 boundaries, 32-bit, and the largest safe integer.
const RECIPIENT_IDS = [0, 1, 35, 36, 1295, 1296, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 10 ** 12 + 7, Number.MAX_SAFE_INTEGER];

describe('verpAddress', () => {
  it('has the documented form, in lower case', () => {
    const messageId = '0190a4c2e6f1a3b5c7d9e1';
    expect(address(messageId, 123456)).toBe(`b+${messageId}.${(123456).toString(36)}.${expectedTag(messageId, 123456)}@${DOMAIN}`);
    expect(address(messageId, 1, 'Bounces.Example.COM')).toMatch(/^b\+0190a4c2e6f1a3b5c7d9e1\.1\.[a-z2-7]{10}@bounces\.example\.com$/);
  });

  it('keeps the local part within 64 octets, made of dot-atom characters, for the largest ids', () => {
    const longest = address(MAX_MESSAGE_ID, Number.MAX_SAFE_INTEGER);
    const local = longest.split('@')[0]!;
    expect(local.length).toBe(MAX_VERP_LOCAL_PART_LENGTH);
    expect(local.length).toBeLessThan(64);
    // RFC 5321 Dot-string: atoms of atext separated by single dots.
    expect(local).toMatch(/^[a-z0-9+]+(\.[a-z0-9+]+)*$/);
    expect(parseVerpAddress(longest, SECRET)).toEqual({ messageId: MAX_MESSAGE_ID, recipientId: Number.MAX_SAFE_INTEGER });
  });

  it('gives every recipient of a message its own address', () => {
    const messageId = newQueueId(1_700_000_000_000);
    const addresses = new Set(RECIPIENT_IDS.map((id) => address(messageId, id)));
    expect(addresses.size).toBe(RECIPIENT_IDS.length);
  });

  it('refuses ids the queue never produces', () => {
    const bad: Array<[string, number]> = [
      ['', 1],
      ['0190A4C2E6F1', 1],
      ['0190a4c2e6f1g', 1],
      ['f'.repeat(33), 1],
      ['0190a4c2e6f1', -1],
      ['0190a4c2e6f1', 1.5],
      ['0190a4c2e6f1', Number.MAX_SAFE_INTEGER + 1],
      ['0190a4c2e6f1', Number.NaN],
    ];
    for (const [messageId, recipientId] of bad) expect(() => address(messageId, recipientId), `${messageId} ${recipientId}`).toThrow(/VERP/);
  });
});

describe('parseVerpAddress', () => {
  it('round-trips many message and recipient ids', () => {
    let count = 0;
    for (let i = 0; i < 200; i++) {
      const messageId = newQueueId(1_600_000_000_000 + i * 7_919_000);
      for (const recipientId of [...RECIPIENT_IDS, i, i * 104_729]) {
        const addr = address(messageId, recipientId);
        expect(parseVerpAddress(addr, SECRET, { domains: new Set([DOMAIN]) })).toEqual({ messageId, recipientId });
        count++;
      }
    }
    expect(count).toBe(200 * (RECIPIENT_IDS.length + 2));
    expect(parseVerpAddress(address('0', 0), SECRET)).toEqual({ messageId: '0', recipientId: 0 });
  });

  it('accepts the address in upper or mixed case, as a remote MTA may have folded it', () => {
    const messageId = '0190a4c2e6f1a3b5c7d9e1';
    const addr = address(messageId, 987_654_321);
    const domains = new Set([DOMAIN]);
    expect(parseVerpAddress(addr.toUpperCase(), SECRET, { domains })).toEqual({ messageId, recipientId: 987_654_321 });
    const mixed = [...addr].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
    expect(parseVerpAddress(mixed, SECRET, { domains })).toEqual({ messageId, recipientId: 987_654_321 });
  });

  it('rejects an altered tag, at every position', () => {
    const addr = address('0190a4c2e6f1a3b5c7d9e1', 42);
    const tag = addr.split('@')[0]!.split('.')[2]!;
    for (let i = 0; i < tag.length; i++) {
      const replacement = tag[i] === 'a' ? 'b' : 'a';
      const forged = withSegment(addr, 2, tag.slice(0, i) + replacement + tag.slice(i + 1));
      expect(parseVerpAddress(forged, SECRET), forged).toBeNull();
    }
  });

  it('rejects another recipient id or message id under a valid tag', () => {
    const messageId = '0190a4c2e6f1a3b5c7d9e1';
    const addr = address(messageId, 42);
    expect(parseVerpAddress(addr, SECRET)).not.toBeNull();
    expect(parseVerpAddress(withSegment(addr, 1, (43).toString(36)), SECRET)).toBeNull();
    expect(parseVerpAddress(withSegment(addr, 1, (41).toString(36)), SECRET)).toBeNull();
    expect(parseVerpAddress(withSegment(addr, 0, 'b+0190a4c2e6f1a3b5c7d9e2'), SECRET)).toBeNull();
    expect(parseVerpAddress(withSegment(addr, 0, 'b+190a4c2e6f1a3b5c7d9e1'), SECRET)).toBeNull();
    // A tag moved from another recipient's address.
    const otherTag = address(messageId, 43).split('@')[0]!.split('.')[2]!;
    expect(parseVerpAddress(withSegment(addr, 2, otherTag), SECRET)).toBeNull();
  });

  it('rejects an address tagged with another secret', () => {
    const addr = verpAddress({ messageId: 'abc123', recipientId: 7, domain: DOMAIN, secret: 'another-secret-that-is-also-32-characters-long' });
    expect(parseVerpAddress(addr, SECRET)).toBeNull();
  });

  it('rejects a domain that is not ours when the domains are given', () => {
    const addr = address('0190a4c2e6f1a3b5c7d9e1', 42);
    const domains = new Set([DOMAIN, 'bounces.example.org']);
    expect(parseVerpAddress(addr, SECRET, { domains })).not.toBeNull();
    expect(parseVerpAddress(addr.replace(DOMAIN, 'bounces.example.net'), SECRET, { domains })).toBeNull();
    expect(parseVerpAddress(addr.replace(DOMAIN, `x.${DOMAIN}`), SECRET, { domains })).toBeNull();
    expect(parseVerpAddress(addr.replace(DOMAIN, 'example.com'), SECRET, { domains })).toBeNull();
    expect(parseVerpAddress(addr, SECRET, { domains: new Set() })).toBeNull();
  });

  it('rejects anything that is not exactly the generated form', () => {
    const messageId = '0190a4c2e6f1a3b5c7d9e1';
    const addr = address(messageId, 36);
    const [local, domain] = addr.split('@') as [string, string];
    const tag = local.split('.')[2]!;
    const malformed = [
      '',
      '@',
      local,
      `${local}@`,
      `@${domain}`,
      `<${addr}>`,
      ` ${addr}`,
      `${addr} `,
      `"${local}"@${domain}`,
      `${local}.x@${domain}`,
      `x${local}@${domain}`,
      local.replace('b+', 'c+') + `@${domain}`,
      local.replace('b+', 'b-') + `@${domain}`,
      local.replace('b+', 'b') + `@${domain}`,
      `b+${messageId}.10.${tag}@${domain}`.replace('.10.', '.010.'), // not canonical base 36
      `b+${messageId}..${tag}@${domain}`,
      `b+.10.${tag}@${domain}`,
      `b+${messageId}.10.${tag.slice(0, 9)}@${domain}`,
      `b+${messageId}.10.${tag}a@${domain}`,
      `b+${messageId}.10.${tag.slice(0, 9)}1@${domain}`, // 1 is not a base32 letter
      `b+${messageId}.zzzzzzzzzzz.${tag}@${domain}`, // above the largest safe integer
      `b+${'f'.repeat(33)}.10.${tag}@${domain}`,
      `SRS0=abcd=ef=example.com=${local}@${domain}`,
      address(messageId, 36, 'bounces.example.uk').replace('.uk', '.u\u212a'), // Kelvin sign: lower-cases to ASCII "k"
      addr.replace('@', '\u0000@'),
    ];
    for (const value of malformed) expect(parseVerpAddress(value, SECRET), JSON.stringify(value)).toBeNull();
    // The canonical form of the non-canonical one above does verify, so its rejection was about the form.
    expect(parseVerpAddress(`b+${messageId}.10.${tag}@${domain}`, SECRET)).toEqual({ messageId, recipientId: 36 });
  });
});

const config: ReturnPathConfig = {
  secret: SECRET,
  domains: { 'example.com': { domain: 'bounces.example.com' }, 'example.org': { domain: 'rp.mail.example.org' } },
};

describe('returnPathFor', () => {
  const ids = { messageId: '0190a4c2e6f1a3b5c7d9e1', recipientId: 42 };

  it('gives a sender domain with an entry a VERP address at its bounce domain', () => {
    const sender = returnPathFor({ ...ids, sender: 'news@example.com', config });
    expect(sender).toBe(address(ids.messageId, ids.recipientId, 'bounces.example.com'));
    expect(parseVerpAddress(sender, SECRET, { domains: bounceDomains(config) })).toEqual(ids);
    const other = returnPathFor({ ...ids, sender: 'alerts@Example.ORG', config });
    expect(other.endsWith('@rp.mail.example.org')).toBe(true);
    expect(parseVerpAddress(other, SECRET, { domains: bounceDomains(config) })).toEqual(ids);
  });

  it('differs per recipient of one message', () => {
    const a = returnPathFor({ ...ids, sender: 'news@example.com', config });
    const b = returnPathFor({ ...ids, recipientId: 43, sender: 'news@example.com', config });
    expect(a).not.toBe(b);
    expect(parseVerpAddress(b, SECRET)).toEqual({ ...ids, recipientId: 43 });
  });

  it('leaves the null sender null', () => {
    expect(returnPathFor({ ...ids, sender: '', config })).toBe('');
  });

  it('leaves senders of domains without an entry unchanged', () => {
    for (const sender of ['news@example.net', 'news@mail.example.com', 'news@com', 'postmaster', 'x@constructor', 'x@__proto__', 'news@example.com.']) {
      expect(returnPathFor({ ...ids, sender, config })).toBe(sender);
    }
    expect(returnPathFor({ ...ids, sender: 'news@example.com', config: { secret: null, domains: {} } })).toBe('news@example.com');
  });

  it('gives a UTF-8 sender, or one whose domain is written in U-labels, an ASCII VERP address that parses back to the recipient row', () => {
    const idn: ReturnPathConfig = { secret: SECRET, domains: { 'xn--bcher-kva.example': { domain: 'bounces.xn--bcher-kva.example' } } };
    for (const sender of ['jörg@bücher.example', 'news@BÜCHER.example', 'news@xn--bcher-kva.example']) {
      const verp = returnPathFor({ ...ids, sender, config: idn });
      expect(verp).toBe(address(ids.messageId, ids.recipientId, 'bounces.xn--bcher-kva.example'));
      expect(verp).toMatch(/^[\x21-\x7e]+$/);
      expect(parseVerpAddress(verp, SECRET, { domains: bounceDomains(idn) })).toEqual(ids);
    }
    const utf8 = returnPathFor({ ...ids, sender: 'jörg@example.com', config });
    expect(parseVerpAddress(utf8, SECRET, { domains: bounceDomains(config) })).toEqual(ids);
    // A bounce that comes back with the address's domain in U-labels is no VERP address of ours.
    expect(parseVerpAddress(utf8.replace('example.com', 'exämple.com'), SECRET)).toBeNull();
  });

  it('uses the domain after the last @', () => {
    const sender = returnPathFor({ ...ids, sender: '"a@example.net"@example.com', config });
    expect(sender.endsWith('@bounces.example.com')).toBe(true);
  });
});

describe('returnPathDomainOf and bounceDomains', () => {
  it('look up sender domains without regard to case, and list every bounce domain', () => {
    expect(returnPathDomainOf('EXAMPLE.com', config)).toBe('bounces.example.com');
    expect(returnPathDomainOf('example.net', config)).toBeNull();
    expect(returnPathDomainOf('toString', config)).toBeNull();
    expect(bounceDomains(config)).toEqual(new Set(['bounces.example.com', 'rp.mail.example.org']));
  });
});

describe('explaining the return path a sender would carry (GET /v1/explain)', () => {
  it('is the VERP form at the bounce domain of a listed sender domain, else the sender as given', () => {
    const dkim = dkimConfigSchema.parse({});
    const keys = createDkimKeyStore({ keys: [], resolver: fixtureTxtResolver({}), clock: manualClock(), logger: createLogger('silent') });
    const explain = (sender: string) => explainSender(sender, { dkim, keys, returnPath: config }).returnPath;
    expect(explain('news@Example.com')).toMatchObject({ verp: true, domain: 'bounces.example.com', address: 'b+<queue id>.<recipient id>.<tag>@bounces.example.com' });
    expect(explain('alerts@example.org')).toMatchObject({ verp: true, domain: 'rp.mail.example.org' });
    expect(explain('news@example.net')).toEqual({ verp: false, domain: null, address: 'news@example.net', detail: 'the sender as given: returnPath.domains does not list example.net' });
  });
});
