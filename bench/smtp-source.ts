import { spawn } from 'node:child_process';
import type { ConnectionMode } from './smtp-load.ts';

/**
 * Drives an SMTP server with Postfix's own load generator, smtp-source(1) (Debian: the `postfix`
 * package), so Rookery and Postfix can be loaded by the same client. smtp-source reports no
 * per-message times: a run gives the number of messages accepted and its wall time.
 *
 * Mind its -d: it means "don't disconnect after a message; send the next one over the same
 * connection". So `reuse` passes -d, and `new` (a connection per message) leaves it out.
 */

export interface SmtpSourceRun {
  /** Transactions whose DATA completed with a 2xx (smtp-source stops at any other reply). */
  accepted: number;
  startedAt: number;
  endedAt: number;
  /** The command line, for the results. */
  command: string;
}

export const SMTP_SOURCE = process.env.SMTP_SOURCE ?? 'smtp-source';

export function smtpSourceArgs(options: {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** -l: bytes of message body; smtp-source adds From, To, Date and Message-Id (~130 bytes). */
  bodyBytes: number;
  from: string;
  to: string;
  connection: ConnectionMode;
}): string[] {
  return [
    '-c', // a running count of completed DATA commands on stdout: how many were accepted
    '-s', String(options.sessions),
    '-m', String(options.messages),
    '-l', String(options.bodyBytes),
    '-f', options.from,
    '-t', options.to,
    ...(options.connection === 'reuse' ? ['-d'] : []),
    `${options.host}:${options.port}`,
  ];
}

/** Runs smtp-source to the end; rejects (with its count and stderr) when it did not send them all. */
export function runSmtpSource(options: Parameters<typeof smtpSourceArgs>[0]): Promise<SmtpSourceRun> {
  const args = smtpSourceArgs(options);
  const command = `${SMTP_SOURCE} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // A benchmark that dies meanwhile must not leave the load generator running.
    const killOnExit = () => void child.kill('SIGKILL');
    process.once('exit', killOnExit);
    let tail = '';
    let stderr = '';
    // The counter is rewritten in place ("1\r2\r3\r..."): keep only the end of the stream.
    child.stdout.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString('latin1')).slice(-64)));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (err) => reject(new Error(`${SMTP_SOURCE} could not be started (${err.message}); install Postfix (apt-get install postfix) or set SMTP_SOURCE`)));
    child.once('close', (code, signal) => {
      const endedAt = Date.now();
      process.off('exit', killOnExit);
      const counts = tail.match(/\d+/g);
      const accepted = counts ? Number(counts[counts.length - 1]) : 0;
      if (code === 0 && accepted === options.messages) return resolve({ accepted, startedAt, endedAt, command });
      reject(new Error(`${command} ended (${code ?? signal}) after ${accepted} of ${options.messages} messages\n${stderr}`));
    });
  });
}
