import { parentPort } from 'node:worker_threads';
import { signatureFields } from './signature-fields.ts';
import type { SigningReply, SigningRequest } from './signing-pool.ts';

/**
 * A signing thread of the pool (signing-pool.ts): signs each message it is sent and answers with
 * the DKIM-Signature fields. It keeps no state between messages.
 */
parentPort!.on('message', (request: SigningRequest) => {
  const reply: SigningReply = { id: request.id, ...signatureFields(request.message, request.keys, request.now, request.expiry) };
  parentPort!.postMessage(reply);
});
