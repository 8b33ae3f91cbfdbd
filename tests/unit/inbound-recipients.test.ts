import { describe, expect, it } from 'vitest';
import { verpConfigSchema } from '../../src/config/return-path-schema.ts';
import { inboundTarget, type InboundAddressing } from '../../src/feedback/inbound-recipients.ts';
import { verpAddress } from '../../src/sender-domains/verp.ts';

const SECRET = 'inbound-recipients-secret-0123456789abcd';
const returnPath = verpConfigSchema.parse({ secret: SECRET, domains: { 'example.com': {}, 'example.org': { domain: 'returns.example.org' } } });
const addressing: InboundAddressing = {
  returnPath,
  fblAddresses: ['fbl@example.com'],
  unsubscribe: { accepts: (address) => /^unsubscribe\+[a-z0-9]+@example\.com$/i.test(address) },
};

describe('whom the inbound listener takes mail for', () => {
  it('a VERP return path whose tag verifies, at any configured bounce domain, in any case', () => {
    const verp = verpAddress({ messageId: '0190a4c2e6f1a3b5c7d9e1', recipientId: 42, domain: 'returns.example.org', secret: SECRET });
    expect(inboundTarget(verp, addressing)).toEqual({ kind: 'verp', address: verp, messageId: '0190a4c2e6f1a3b5c7d9e1', recipientId: 42 });
    expect(inboundTarget(verp.toUpperCase(), addressing)).toMatchObject({ kind: 'verp', recipientId: 42 });
  });

  it('not a VERP address with a forged or altered tag, nor one at a domain that is no bounce domain', () => {
    const verp = verpAddress({ messageId: '0190a4c2e6f1a3b5c7d9e1', recipientId: 42, domain: 'bounces.example.com', secret: SECRET });
    const altered = verp.replace('.16.', '.17.');
    expect(altered).not.toBe(verp);
    expect(inboundTarget(altered, addressing)).toEqual({ kind: 'refused', reason: 'verp-tag-invalid' });
    const forged = verpAddress({ messageId: '0190a4c2e6f1a3b5c7d9e1', recipientId: 42, domain: 'bounces.example.com', secret: 'another-secret-0123456789abcdefghijkl' });
    expect(inboundTarget(forged, addressing)).toEqual({ kind: 'refused', reason: 'verp-tag-invalid' });
    expect(inboundTarget(verp.replace('@bounces.example.com', '@example.com'), addressing)).toEqual({ kind: 'refused', reason: 'not-ours' });
  });

  it('the feedback-loop addresses, postmaster of a bounce domain, and the unsubscribe addresses; nobody else', () => {
    expect(inboundTarget('FBL@example.com', addressing)).toEqual({ kind: 'fbl', address: 'FBL@example.com' });
    expect(inboundTarget('PostMaster@Bounces.example.com', addressing)).toEqual({ kind: 'fbl', address: 'PostMaster@Bounces.example.com' });
    expect(inboundTarget('unsubscribe+abc123@example.com', addressing)).toEqual({ kind: 'unsubscribe', address: 'unsubscribe+abc123@example.com' });
    for (const address of ['postmaster@example.com', 'postmaster@elsewhere.test', 'someone@elsewhere.test', 'fbl@example.com.evil.test', 'postmaster']) {
      expect(inboundTarget(address, addressing).kind).toBe('refused');
    }
  });

  it('takes no VERP address while returnPath lists no domain', () => {
    const off: InboundAddressing = { returnPath: verpConfigSchema.parse({}), fblAddresses: [] };
    const verp = verpAddress({ messageId: 'ab', recipientId: 1, domain: 'bounces.example.com', secret: SECRET });
    expect(inboundTarget(verp, off)).toEqual({ kind: 'refused', reason: 'not-ours' });
  });
});
