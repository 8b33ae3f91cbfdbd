import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

/**
 * Webhook secrets and signatures as the Standard Webhooks specification defines them, so a
 * receiver can check a delivery with any of its verification libraries: the secret is `whsec_`
 * and the base64 of the key bytes; each request carries `webhook-id`, `webhook-timestamp`
 * (seconds) and `webhook-signature`, `v1,` and the base64 of HMAC-SHA256(key, "id.timestamp.body").
 */

const SECRET_PREFIX = 'whsec_';

/** A new signing secret: 24 random bytes (192 bits), within the specification's 24 to 64. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString('base64');
}

/** A new endpoint id. */
export function newWebhookId(): string {
  return `wh_${randomBytes(12).toString('hex')}`;
}

export interface SignatureHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The HMAC key of a secret: made once per secret by a caller that signs often (decoding it each time costs more than the HMAC). */
export function signingKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64'));
}

/** The three headers of one attempt: `id` is the same on every attempt of a delivery, the time is now. */
export function signatureHeaders(secret: string | KeyObject, id: string, timestampSeconds: number, body: string): SignatureHeaders {
  const key = typeof secret === 'string' ? signingKey(secret) : secret;
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}
