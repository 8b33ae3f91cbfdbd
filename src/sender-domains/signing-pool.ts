import { Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.ts';
import type { SignatureFields, SigningKey } from './signature-fields.ts';

/**
 * Worker threads that make DKIM signatures, so that the event loop never waits on a private-key
 * operation (an RSA-2048 signature costs about a millisecond of CPU: on the event loop it delays
 * every session's next reply by as much, and caps intake at what one core can sign).
 *
 * Each message goes to the thread with the fewest messages in hand. The message is copied once
 * into a buffer of its own that is handed over without another copy. A key crosses to a thread
 * once, the first time that thread signs with it (a KeyObject crosses as a handle to the same
 * parsed key, so OpenSSL's per-key precomputation is kept); after that requests name it by a
 * number. A thread that dies fails the messages it held (the signer sends those unsigned and
 * counts them) and is replaced by a new one at the next message.
 */

export interface SigningRequest {
  id: number;
  message: Uint8Array;
  /** The keys by number; `key` only the first time this thread sees that number. */
  keys: Array<{ ref: number; key?: SigningKey }>;
  now: number;
  expiry: number | null;
}

export interface SigningReply extends SignatureFields {
  id: number;
}

export interface SigningPool {
  readonly size: number;
  sign(message: Uint8Array, keys: readonly SigningKey[], now: number, expiry: number | null): Promise<SignatureFields>;
  /** Ends every thread; messages still in hand fail. Safe to call twice. */
  close(): Promise<void>;
}

export interface SigningPoolOptions {
  size: number;
  logger: Logger;
  /** The thread's entry file; tests give one that misbehaves. */
  workerFile?: URL;
}

interface Pending {
  resolve: (fields: SignatureFields) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** The key numbers this thread has been sent. */
  known: Set<number>;
}

const WORKER_FILE = new URL('./signing-worker.ts', import.meta.url);

export function createSigningPool(options: SigningPoolOptions): SigningPool {
  const { size } = options;
  if (!Number.isInteger(size) || size < 1) throw new Error(`a signing pool needs at least one thread (got ${size})`);
  const log = options.logger.child({ component: 'dkim' });
  const threads: Array<Thread | null> = Array.from({ length: size }, () => null);
  let nextId = 1;
  let closed = false;
  // A number per parsed key; a key the store reloads is a new KeyObject and gets a new number.
  const keyRefs = new WeakMap<SigningKey['privateKey'], number>();
  let nextRef = 1;
  function refOf(privateKey: SigningKey['privateKey']): number {
    let ref = keyRefs.get(privateKey);
    if (ref === undefined) keyRefs.set(privateKey, (ref = nextRef++));
    return ref;
  }

  function failAll(thread: Thread, err: Error): void {
    for (const pending of thread.pending.values()) pending.reject(err);
    thread.pending.clear();
  }

  function start(slot: number): Thread {
    const worker = new Worker(options.workerFile ?? WORKER_FILE);
    // An idle pool does not keep the process alive; close() still ends it on a stop.
    worker.unref();
    const thread: Thread = { worker, pending: new Map(), known: new Set() };
    worker.on('message', (reply: SigningReply) => {
      const pending = thread.pending.get(reply.id);
      thread.pending.delete(reply.id);
      pending?.resolve({ fields: reply.fields, failures: reply.failures });
    });
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      if (threads[slot] === thread) threads[slot] = null;
      if (closed) return failAll(thread, new Error('the signing pool is closed'));
      log.error({ event: 'dkim.worker.failed', inHand: thread.pending.size, error: why }, 'a DKIM signing thread stopped; its messages go unsigned');
      failAll(thread, new Error(`signing thread stopped: ${why}`));
    };
    worker.on('error', (err) => lost(err.message));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    threads[slot] = thread;
    return thread;
  }

  /** The live thread with the fewest messages in hand; a slot whose thread died gets a new one. */
  function pick(): Thread {
    let best: Thread | null = null;
    for (let slot = 0; slot < size; slot++) {
      const thread = threads[slot] ?? start(slot);
      if (!best || thread.pending.size < best.pending.size) best = thread;
      if (best.pending.size === 0) break;
    }
    return best!;
  }

  return {
    size,
    sign(message, keys, now, expiry) {
      if (closed) return Promise.reject(new Error('the signing pool is closed'));
      const thread = pick();
      const id = nextId++;
      // A buffer of its own, sized to the message, handed over (not copied again) to the thread.
      const copy = new Uint8Array(message);
      const refs = keys.map(({ domain, selector, algorithm, privateKey }) => {
        const ref = refOf(privateKey);
        if (thread.known.has(ref)) return { ref };
        thread.known.add(ref);
        return { ref, key: { domain, selector, algorithm, privateKey } };
      });
      const request: SigningRequest = { id, message: copy, keys: refs, now, expiry };
      return new Promise<SignatureFields>((resolve, reject) => {
        thread.pending.set(id, { resolve, reject });
        // Referenced while it has work, so a stop waits for answers rather than losing them.
        if (thread.pending.size === 1) thread.worker.ref();
        thread.worker.postMessage(request, [copy.buffer]);
      }).finally(() => {
        if (thread.pending.size === 0) thread.worker.unref();
      });
    },
    async close() {
      closed = true;
      await Promise.all(
        threads.map(async (thread, slot) => {
          if (!thread) return;
          threads[slot] = null;
          await thread.worker.terminate();
          failAll(thread, new Error('the signing pool is closed'));
        }),
      );
    },
  };
}
