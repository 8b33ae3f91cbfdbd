import { parentPort } from 'node:worker_threads';
import { signatureFields, type SigningKey } from './signature-fields.ts';
import { THREAD_READY, type SigningForget, type SigningReply, type SigningRequest } from './signing-pool.ts';

/**
 * A signing thread of the pool (signing-pool.ts): signs each message it is sent and answers with
 * the DKIM-Signature fields. It keeps the keys it was sent, by number, until told to forget them;
 * nothing else.
 */
const keys = new Map<number, SigningKey>();

parentPort!.on('message', (request: SigningRequest | SigningForget) => {
  if ('forget' in request) {
    for (const ref of request.forget) keys.delete(ref);
    return;
  }
  const signing = request.keys.map(({ ref, key }) => {
    if (key) keys.set(ref, key);
    const known = keys.get(ref);
    if (!known) throw new Error(`key ${ref} was never sent to this thread`);
    return known;
  });
  const reply: SigningReply = { id: request.id, ...signatureFields(request.message, signing, request.now, request.expiry) };
  parentPort!.postMessage(reply);
});
parentPort!.postMessage(THREAD_READY);
