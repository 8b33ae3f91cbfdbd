import net from 'node:net';
import tls from 'node:tls';
import type { FuzzSequence, FuzzStep } from './smtp-fuzz-plan.ts';

/**
 * Runs one fuzz sequence (smtp-fuzz-plan.ts) on a new connection: reads the greeting, writes
 * each step and waits for as many replies as it has command lines, sends a message's data only
 * after a 354, and records each message answered "250 ... queued as <id>". A connection the
 * server closes ends the sequence early; that is allowed. A reply that does not come within
 * `replyTimeoutMs` is a failure: the server stopped answering.
 */

export interface SequenceResult {
  /** Messages the server acknowledged, with the queue id of its reply. */
  acknowledged: Array<{ token: string; queueId: string }>;
  /** Why the sequence failed, or null. */
  failure: string | null;
}

class Closed extends Error {}

/** One connection's replies: final reply lines are counted as they arrive. */
class Conversation {
  private socket: net.Socket;
  private pending = '';
  private readonly replies: string[] = [];
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  private listen(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.pending += chunk.toString('latin1');
      let end: number;
      while ((end = this.pending.indexOf('\r\n')) >= 0) {
        const text = this.pending.slice(0, end);
        this.pending = this.pending.slice(end + 2);
        if (/^\d{3}(?: |$)/.test(text)) this.replies.push(text);
      }
      this.wake?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (socket !== this.socket) return;
      this.closed = true;
      this.wake?.();
    });
  }

  /** The next `n` final replies; throws Closed when the connection ends first. */
  async next(n: number, timeoutMs: number): Promise<string[]> {
    await this.until(() => this.replies.length >= n || this.closed, timeoutMs, () => `no reply within ${timeoutMs} ms (have ${this.replies.length} of ${n})`);
    if (this.replies.length < n) throw new Closed();
    return this.replies.splice(0, n);
  }

  /** Waits for `done`, woken by each chunk received and by the close. */
  private async until(done: () => boolean, timeoutMs: number, failure: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(failure());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  write(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Continues over TLS on the same connection (after a 220 to STARTTLS). */
  async upgrade(timeoutMs: number): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    this.socket = secure;
    this.pending = '';
    this.listen(secure);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`TLS handshake not done within ${timeoutMs} ms`)), timeoutMs);
      secure.once('secureConnect', () => (clearTimeout(timer), resolve()));
      secure.once('close', () => (clearTimeout(timer), reject(new Closed())));
    });
  }

  /** Half-closes (or ends at once with a reset) and waits for the server to close. */
  async finish(how: 'end' | 'abort', timeoutMs: number): Promise<void> {
    // A reset (RST) where the socket allows one; TLS sockets are destroyed.
    if (how === 'abort') return void (this.socket instanceof tls.TLSSocket ? this.socket.destroy() : this.socket.resetAndDestroy());
    this.socket.end();
    await this.until(() => this.closed, timeoutMs, () => `the server did not close the connection within ${timeoutMs} ms of the client's end`);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function runSequence(sequence: FuzzSequence, ports: { plain: number; starttls: number }, replyTimeoutMs: number): Promise<SequenceResult> {
  const acknowledged: SequenceResult['acknowledged'] = [];
  const socket = net.connect(sequence.listener === 'plain' ? ports.plain : ports.starttls, '127.0.0.1');
  const talk = new Conversation(socket);
  let at = 'greeting';
  try {
    await talk.next(1, replyTimeoutMs);
    for (const [i, step] of sequence.steps.entries()) {
      at = `step ${i} (${step.kind})`;
      if (!(await runStep(talk, step, acknowledged, replyTimeoutMs))) return { acknowledged, failure: null };
    }
    at = `end (${sequence.end.kind})`;
    const { end } = sequence;
    if (end.kind === 'abort') await talk.finish('abort', replyTimeoutMs);
    else {
      if (end.kind === 'quit') talk.write(Buffer.from('QUIT\r\n'));
      if (end.kind === 'garbage') talk.write(end.bytes);
      await talk.finish('end', replyTimeoutMs);
    }
    return { acknowledged, failure: null };
  } catch (err) {
    if (err instanceof Closed) return { acknowledged, failure: null };
    return { acknowledged, failure: `sequence ${sequence.index}, at ${at}: ${(err as Error).message}` };
  } finally {
    talk.destroy();
  }
}

/** Runs one step; false when the sequence ends here (the client cut the connection on purpose). */
async function runStep(talk: Conversation, step: FuzzStep, acknowledged: SequenceResult['acknowledged'], timeoutMs: number): Promise<boolean> {
  if (step.kind === 'commands') {
    await sendLines(talk, step.lines, step.pipelined, timeoutMs);
    return true;
  }
  if (step.kind === 'starttls') {
    talk.write(Buffer.from('STARTTLS\r\n'));
    const [reply] = await talk.next(1, timeoutMs);
    if (!reply!.startsWith('220')) return true;
    if (!step.upgrade) {
      talk.write(Buffer.from('this is not a TLS ClientHello\r\n'));
      await talk.finish('end', timeoutMs);
      return false;
    }
    await talk.upgrade(timeoutMs);
    return true;
  }
  const replies = await sendLines(talk, step.envelope, step.pipelined, timeoutMs);
  if (!replies.at(-1)!.startsWith('354')) return true;
  const { message } = step;
  let sent = 0;
  for (const chunk of message.writes) {
    if (message.abortAfter !== null && sent + chunk.length > message.abortAfter) {
      talk.write(chunk.subarray(0, message.abortAfter - sent));
      await talk.finish('abort', timeoutMs);
      return false;
    }
    talk.write(chunk);
    sent += chunk.length;
  }
  const [reply] = await talk.next(1, timeoutMs);
  const queued = /^250 .*queued as (\S+)/.exec(reply!);
  if (queued) acknowledged.push({ token: message.token, queueId: queued[1]! });
  return true;
}

async function sendLines(talk: Conversation, lines: Buffer[], pipelined: boolean, timeoutMs: number): Promise<string[]> {
  if (pipelined) {
    talk.write(Buffer.concat(lines));
    return talk.next(lines.length, timeoutMs);
  }
  const replies: string[] = [];
  for (const l of lines) {
    talk.write(l);
    replies.push(...(await talk.next(1, timeoutMs)));
  }
  return replies;
}
