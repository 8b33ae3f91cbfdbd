import { parentPort } from 'node:worker_threads';
import { signatureFields, type SigningKey } from './signature-fields.ts';
import type { SigningReply, SigningRequest } from './signing-pool.ts';

/**
 * A signing thread of the pool (signing-pool.ts): signs each message it is sent and answers with
 * the DKIM-Signature fields. It keeps the keys it was sent, by number; nothing else.
 */
const keys = new Map<number, SigningKey>();

parentPort!.on('message', (request: SigningRequest) => {
  const signing = request.keys.map(({ ref, key }) => {
    if (key) keys.set(ref, key);
    return keys.get(ref)!;
  });
  const reply: SigningReply = { id: request.id, ...signatureFields(request.message, signing, request.now, request.expiry) };
  parentPort!.postMessage(reply);
});
