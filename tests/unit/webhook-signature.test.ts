import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import type { StoredWebhookEvent } from '../../src/storage/webhook-outbox.ts';
import { webhookBody } from '../../src/webhooks/payload.ts';
import { newWebhookId, newWebhookSecret, signatureHeaders } from '../../src/webhooks/signature.ts';

const event: StoredWebhookEvent = {
  type: 'recipient.delivered',
  tenant: 'acme',
  messageId: 'q-4711',
  recipient: 'user@dest.test',
  at: Date.UTC(2026, 10, 30, 12, 0, 0),
  egressIp: '192.0.2.10',
  reply: { code: 250, enhanced: '2.0.0', text: '250 2.0.0 Ok: queued', remoteHost: 'mx.dest.test' },
  attempt: 1,
  bounceClass: 'none',
  tags: ['welcome'],
  metadata: { orderId: '4711' },
  data: { extra: 'kept', messageId: 'cannot override' },
};

describe('webhook signatures (Standard Webhooks)', () => {
  it('makes secrets of 24 random bytes and ids that do not repeat', () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(24);
    expect(newWebhookSecret()).not.toBe(secret);
    expect(newWebhookId()).toMatch(/^wh_[0-9a-f]{24}$/);
  });

  it('signs so that the reference library verifies the body, and nothing else', () => {
    const secret = newWebhookSecret();
    const body = webhookBody(event);
    const now = Math.floor(Date.now() / 1000);
    const headers = signatureHeaders(secret, 'msg_abc', now, body);
    expect(headers).toMatchObject({ 'webhook-id': 'msg_abc', 'webhook-timestamp': String(now), 'webhook-signature': expect.stringMatching(/^v1,[A-Za-z0-9+/]{43}=$/) });
    // The library's own signature of the same message is the same string.
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign('msg_abc', new Date(now * 1000), body));
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));

    expect(() => new Webhook(newWebhookSecret()).verify(body, { ...headers })).toThrow(WebhookVerificationError);
    expect(() => new Webhook(secret).verify(body.replace('acme', 'evil'), { ...headers })).toThrow(WebhookVerificationError);
    expect(() => new Webhook(secret).verify(body, { ...headers, 'webhook-id': 'msg_other' })).toThrow(WebhookVerificationError);
  });

  it('renders the same body on every attempt, with the common fields winning over the event\'s own', () => {
    const body = webhookBody(event);
    expect(webhookBody(structuredClone(event))).toBe(body);
    expect(JSON.parse(body)).toEqual({
      type: 'recipient.delivered',
      timestamp: '2026-11-30T12:00:00.000Z',
      data: {
        extra: 'kept',
        messageId: 'q-4711',
        recipient: 'user@dest.test',
        tenant: 'acme',
        tags: ['welcome'],
        metadata: { orderId: '4711' },
        egressIp: '192.0.2.10',
        reply: { code: 250, enhanced: '2.0.0', text: '250 2.0.0 Ok: queued', remoteHost: 'mx.dest.test' },
        attempt: 1,
        bounceClass: 'none',
      },
    });
  });
});
