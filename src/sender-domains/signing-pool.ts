import { Worker } from 'node:worker_threads';
import { systemClock, type Clock } from '../clock.ts';
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
 * number. A key no message has used for KEY_IDLE_MS is forgotten by the threads that hold it (told
 * before the message that found it idle, and sent again if it is used again), so keys a reload
 * replaced leave their memory. A thread that dies fails the messages it held (the signer signs
 * those on the event loop instead) and its slot gets a new thread at the first message a second
 * later, so a thread that cannot live costs a respawn a second, not one per message. A thread that
 * leaves a message unanswered for 10 seconds is ended the same way.
 */

export interface SigningRequest {
  id: number;
  message: Uint8Array;
  /** The keys by number; `key` only the first time this thread sees that number. */
  keys: Array<{ ref: number; key?: SigningKey }>;
  now: number;
  expiry: number | null;
}

/** Keys a thread drops: none has been used for a while. */
export interface SigningForget {
  forget: number[];
}

export interface SigningReply extends SignatureFields {
  id: number;
}

/** What a thread posts once its code is loaded, before any request. */
export const THREAD_READY = 'ready';

export interface SigningPool {
  readonly size: number;
  /** Starts every thread and waits until each has loaded; rejects when one cannot. */
  start(): Promise<void>;
  sign(message: Uint8Array, keys: readonly SigningKey[], now: number, expiry: number | null): Promise<SignatureFields>;
  /** Ends every thread; messages still in hand fail. Safe to call twice. */
  close(): Promise<void>;
}

export interface SigningPoolOptions {
  size: number;
  logger: Logger;
  /** The thread's entry file; tests give one that misbehaves. */
  workerFile?: URL;
  /** How long a thread may leave a message unanswered before it counts as stuck (default 10 s). */
  answerTimeoutMs?: number;
  /** The time keys were last used by (the system's by default). */
  clock?: Clock;
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
  /** Settles once the thread has loaded its code (or failed to). */
  ready: Promise<void>;
  /** Ends the thread as failed: its messages in hand fail, its slot waits for a new one. */
  lose: (why: string) => void;
}

const WORKER_FILE = new URL('./signing-worker.ts', import.meta.url);
/** How long a slot whose thread died stays empty. */
const RESPAWN_DELAY_MS = 1_000;
/** A signature takes milliseconds; a thread that has not answered one in this long is stuck. */
const ANSWER_TIMEOUT_MS = 10_000;
/** A key unused this long is dropped by the threads; looked for at most once a minute. */
const KEY_IDLE_MS = 10 * 60_000;
const PRUNE_EVERY_MS = 60_000;

export function createSigningPool(options: SigningPoolOptions): SigningPool {
  const { size, answerTimeoutMs = ANSWER_TIMEOUT_MS } = options;
  if (!Number.isInteger(size) || size < 1) throw new Error(`a signing pool needs at least one thread (got ${size})`);
  const log = options.logger.child({ component: 'dkim' });
  const threads: Array<Thread | null> = Array.from({ length: size }, () => null);
  const diedAt: number[] = Array.from({ length: size }, () => 0);
  let nextId = 1;
  let closed = false;

  // A number per key: a KeyObject with what it signs as. A key the store reloads is a new
  // KeyObject and gets a new number.
  const keyRefs = new WeakMap<SigningKey['privateKey'], Map<string, number>>();
  let nextRef = 1;
  const clock = options.clock ?? systemClock;
  /** When each key number was last used. */
  const lastUsed = new Map<number, number>();
  let prunedAt = clock.now();

  function pruneIdleKeys(now: number): void {
    if (now - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = now;
    const idle = [...lastUsed].filter(([, at]) => now - at >= KEY_IDLE_MS).map(([ref]) => ref);
    for (const ref of idle) lastUsed.delete(ref);
    for (const thread of threads) {
      if (!thread) continue;
      const forget = idle.filter((ref) => thread.known.delete(ref));
      if (forget.length > 0) thread.worker.postMessage({ forget } satisfies SigningForget);
    }
  }

  function refOf({ domain, selector, algorithm, privateKey }: SigningKey): number {
    let byUse = keyRefs.get(privateKey);
    if (!byUse) keyRefs.set(privateKey, (byUse = new Map()));
    const use = `${domain}\n${selector}\n${algorithm}`;
    let ref = byUse.get(use);
    if (ref === undefined) byUse.set(use, (ref = nextRef++));
    return ref;
  }

  function failAll(thread: Thread, err: Error): void {
    for (const pending of thread.pending.values()) pending.reject(err);
    thread.pending.clear();
  }

  function spawn(slot: number): Thread {
    const worker = new Worker(options.workerFile ?? WORKER_FILE);
    // An idle pool does not keep the process alive; close() still ends it on a stop.
    worker.unref();
    let loaded!: () => void;
    let lostBeforeLoad!: (err: Error) => void;
    const thread: Thread = {
      worker,
      pending: new Map(),
      known: new Set(),
      ready: new Promise((resolve, reject) => ((loaded = resolve), (lostBeforeLoad = reject))),
      lose: (why) => lost(why),
    };
    thread.ready.catch(() => {});
    worker.on('message', (reply: SigningReply | typeof THREAD_READY) => {
      if (reply === THREAD_READY) return loaded();
      const pending = thread.pending.get(reply.id);
      thread.pending.delete(reply.id);
      pending?.resolve({ fields: reply.fields, failures: reply.failures });
    });
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      lostBeforeLoad(new Error(`DKIM signing thread could not start: ${why}`));
      if (threads[slot] === thread) {
        threads[slot] = null;
        diedAt[slot] = Date.now();
      }
      if (closed) return failAll(thread, new Error('the signing pool is closed'));
      log.error({ event: 'dkim.worker.failed', inHand: thread.pending.size, error: why }, 'a DKIM signing thread stopped; its messages are signed on the event loop');
      failAll(thread, new Error(`signing thread stopped: ${why}`));
      void worker.terminate();
    };
    worker.on('error', (err) => lost(err.message));
    // A message the thread could not read: it can never answer it.
    worker.on('messageerror', (err) => lost(`a message could not be read: ${err.message}`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    threads[slot] = thread;
    return thread;
  }

  /** The live thread with the fewest messages in hand; an empty slot gets a new thread unless its last one died just now. */
  function pick(): Thread | null {
    let best: Thread | null = null;
    const now = Date.now();
    for (let slot = 0; slot < size; slot++) {
      const thread = threads[slot] ?? (now - diedAt[slot]! >= RESPAWN_DELAY_MS ? spawn(slot) : null);
      if (!thread) continue;
      if (!best || thread.pending.size < best.pending.size) best = thread;
      if (best.pending.size === 0) break;
    }
    return best;
  }

  return {
    size,
    async start() {
      for (let slot = 0; slot < size; slot++) if (!threads[slot]) spawn(slot);
      await Promise.all(threads.map((thread) => thread?.ready));
    },
    sign(message, keys, now, expiry) {
      if (closed) return Promise.reject(new Error('the signing pool is closed'));
      const thread = pick();
      if (!thread) return Promise.reject(new Error('no signing thread is running'));
      const id = nextId++;
      // A buffer of its own, sized to the message, handed over (not copied again) to the thread.
      const copy = new Uint8Array(message);
      const usedAt = clock.now();
      pruneIdleKeys(usedAt);
      const refs = keys.map((key) => {
        const ref = refOf(key);
        lastUsed.set(ref, usedAt);
        if (thread.known.has(ref)) return { ref };
        thread.known.add(ref);
        const { domain, selector, algorithm, privateKey } = key;
        return { ref, key: { domain, selector, algorithm, privateKey } };
      });
      const request: SigningRequest = { id, message: copy, keys: refs, now, expiry };
      let stuck: NodeJS.Timeout | undefined;
      return new Promise<SignatureFields>((resolve, reject) => {
        thread.pending.set(id, { resolve, reject });
        // Referenced while it has work, so a stop waits for answers rather than losing them.
        if (thread.pending.size === 1) thread.worker.ref();
        thread.worker.postMessage(request, [copy.buffer]);
        // A thread that does not answer holds its sessions before their 250: it is ended.
        stuck = setTimeout(() => thread.lose(`no answer within ${answerTimeoutMs} ms`), answerTimeoutMs);
      }).finally(() => {
        clearTimeout(stuck);
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
