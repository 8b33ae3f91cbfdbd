import { spawn } from 'node:child_process';
import { acceptingConnections, freePort } from '../tests/helpers/free-port.ts';

/**
 * Postfix's smtp-sink(1) on a loopback port: a destination written in C that accepts every
 * message and throws it away, so a run measures the sender rather than a sink in the same Node
 * process as the load generator. It stores nothing, so messages are counted by number: with -c it
 * writes running counters ("sess=N quit=N mesg=N", rewritten in place) whenever a message's final
 * dot arrives, and they are read here as they come.
 */

export const SMTP_SINK = process.env.SMTP_SINK ?? 'smtp-sink';

export interface PostfixSmtpSink {
  host: string;
  port: number;
  pid: number;
  /** Messages received so far (final dots). */
  received(): number;
  /** When the count last went up (ms epoch); 0 before the first message. */
  lastReceivedAt(): number;
  /** Resolves once at least n messages arrived (rejects after timeoutMs, or if smtp-sink exits). */
  waitForMessages(n: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startPostfixSmtpSink(options: { host?: string; port?: number } = {}): Promise<PostfixSmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  // Run as root, smtp-sink insists on dropping privileges to a user of our choice.
  const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  // Backlog 1000: a burst of new connections must wait in the kernel, not be refused.
  const child = spawn(SMTP_SINK, ['-c', ...user, `${host}:${port}`, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let lastAt = 0;
  let tail = '';
  let stderr = '';
  let exitedWith: string | null = null;
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('latin1')).slice(-200);
    const matches = [...tail.matchAll(/mesg=(\d+)/g)];
    const latest = matches.length ? Number(matches[matches.length - 1]![1]) : 0;
    if (latest > count) {
      count = latest;
      lastAt = Date.now();
      waiters.forEach((check) => check());
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A benchmark that dies on an error must not leave the sink behind (it would keep its port).
  const killOnExit = () => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('close', (code, signal) => {
      exitedWith = String(code ?? signal);
      process.off('exit', killOnExit);
      waiters.forEach((check) => check());
      resolve();
    }),
  );
  const failedToStart = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`${SMTP_SINK} could not be started (${err.message}); install Postfix (apt-get install postfix) or set SMTP_SINK`))),
  );
  try {
    await Promise.race([acceptingConnections({ name: SMTP_SINK, host, port, alive: () => exitedWith === null, timeoutMs: 5_000, pollMs: 20 }), failedToStart]);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }

  return {
    host,
    port,
    pid: child.pid!,
    received: () => count,
    lastReceivedAt: () => lastAt,
    waitForMessages(n, timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (count >= n) done(null);
          else if (exitedWith !== null) done(new Error(`${SMTP_SINK} exited (${exitedWith}) after ${count} of ${n} messages\n${stderr}`));
        };
        const timer = setTimeout(() => done(new Error(`${SMTP_SINK}: timed out after ${timeoutMs} ms waiting for ${n} messages (have ${count})`)), timeoutMs);
        const done = (err: Error | null) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      if (exitedWith === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
