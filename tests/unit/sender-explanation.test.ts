import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dkimConfigSchema, type DkimConfigInput } from '../../src/config/dkim-schema.ts';
import { verpConfigSchema } from '../../src/config/return-path-schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createDkimKeyStore, type DkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { explainSender } from '../../src/sender-domains/sender-explanation.ts';
import { createDkimSigner } from '../../src/sender-domains/signer.ts';
import { createDkimKeyFiles, fixtureTxtResolver, readKeysOf, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { manualClock } from '../helpers/manual-clock.ts';

/**
 * What GET /v1/explain says a sender's mail would carry: the DKIM domain and selectors, checked
 * against what the signer then does with a message From that sender, and the return path.
 */

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
const returnPath = verpConfigSchema.parse({ secret: 'a-return-path-secret-of-32-characters', domains: { 'example.com': {}, 'shop.example': { domain: 'bounce.shop.example' } } });

function setup(dkim: DkimConfigInput) {
  const config = dkimConfigSchema.parse({ ...dkim, workers: 0 });
  const clock = manualClock(Date.UTC(2026, 5, 1));
  const keys = createDkimKeyStore({ keys: readKeysOf(config), resolver: fixtureTxtResolver({}), clock, logger });
  stores.push(keys);
  const signer = createDkimSigner({ keys, config, clock, logger });
  return { explain: (sender: string) => explainSender(sender, { dkim: config, keys, returnPath }), signer };
}

const message = (from: string) => Buffer.from(`From: ${from}\r\nTo: bob@example.org\r\nSubject: Hi\r\n\r\nHi.\r\n`);

describe('the DKIM signature a sender would get', () => {
  it('names what the signer does: its own keys, a parent covering subdomains, the fallback, or none', async () => {
    const { explain, signer } = setup({
      domains: {
        'example.com': { keys: [{ selector: 'rsa1', privateKey: files.rsa.path }, { selector: 'ed1', privateKey: files.ed25519.path }] },
        'parent.example': { keys: [{ selector: 'p1', privateKey: files.rsa.path }], subdomains: true },
      },
      fallback: 'parent.example',
    });
    const cases: Array<[string, string, string, string[]]> = [
      ['news@example.com', 'domain', 'example.com', ['rsa1', 'ed1']],
      ['app@mail.parent.example', 'parent', 'parent.example', ['p1']],
      ['app@elsewhere.example', 'fallback', 'parent.example', ['p1']],
    ];
    for (const [sender, source, domain, selectors] of cases) {
      const explained = explain(sender).dkim;
      expect(explained, sender).toMatchObject({ fromDomain: sender.split('@')[1], source, domain, selectors });
      const signed = await signer.sign(message(sender));
      expect({ domain: signed.domain, selectors: signed.selectors }, sender).toEqual({ domain: explained.domain, selectors: explained.selectors });
    }
    expect(explain('news@example.com').dkim.detail).toBe("signed with d=example.com, its own key: rsa1 (rsa-sha256), ed1 (ed25519-sha256) (assuming the From header's domain is example.com)");
    expect(explain('app@mail.parent.example').dkim.detail).toContain('dkim.domains.parent.example.subdomains');
    expect(explain('app@elsewhere.example').dkim.detail).toContain('dkim.fallback: elsewhere.example has no key of its own');
  });

  it('says when the mail leaves unsigned', async () => {
    const { explain, signer } = setup({ domains: { 'example.com': { keys: [{ selector: 'rsa1', privateKey: files.rsa.path }] } } });
    expect(explain('app@other.example').dkim).toEqual({
      fromDomain: 'other.example',
      domain: null,
      source: 'none',
      selectors: [],
      detail: "no DKIM key for other.example and no dkim.fallback: unsigned (assuming the From header's domain is other.example)",
    });
    expect((await signer.sign(message('app@other.example'))).domain).toBeNull();
  });
});

describe('the return path a sender would carry', () => {
  it('is a VERP address at the bounce domain of a listed sender domain, else the sender as given', () => {
    const { explain } = setup({});
    expect(explain('news@Example.com').returnPath).toMatchObject({ verp: true, domain: 'bounces.example.com', address: 'b+<queue id>.<recipient id>.<tag>@bounces.example.com' });
    expect(explain('orders@shop.example').returnPath).toMatchObject({ verp: true, domain: 'bounce.shop.example' });
    expect(explain('app@other.example').returnPath).toEqual({
      verp: false,
      domain: null,
      address: 'app@other.example',
      detail: 'the sender as given: returnPath.domains does not list other.example',
    });
  });
});
