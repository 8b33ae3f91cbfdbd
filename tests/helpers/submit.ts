import nodemailer from 'nodemailer';
import type { Submission } from '../../src/engine/queue.ts';

export interface SubmitTarget {
  host: string;
  port: number;
}

/** A test message from app@sender.test to user@dest.test, handed to the queue as the HTTP path does (Daemon.submit). */
export function testSubmission(messageId: string): Submission {
  const [sender, to] = ['app@sender.test', 'user@dest.test'];
  return { sender, recipients: [to], body: testMessage({ from: sender, to, messageId }), submitter: null, source: 'http', clientAddress: null };
}

/** A small wire-form test message with a known Message-ID. */
export function testMessage(options: { from: string; to: string; messageId: string; subject?: string; bodyBytes?: number }): Buffer {
  const filler = 'The quick brown fox jumps over the lazy dog. 0123456789\r\n';
  const lines = Math.max(1, Math.ceil((options.bodyBytes ?? 200) / filler.length));
  return Buffer.from(
    [
      `From: <${options.from}>`,
      `To: <${options.to}>`,
      `Subject: ${options.subject ?? 'test'}`,
      `Message-ID: ${options.messageId}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      filler.repeat(lines),
    ].join('\r\n'),
  );
}

/** A pooled submission client (plain SMTP on loopback, as an application would use it). */
export function submissionClient(target: SubmitTarget, maxConnections = 1, auth?: { user: string; pass: string }) {
  const transport = nodemailer.createTransport({
    host: target.host,
    port: target.port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections,
    maxMessages: Infinity,
    ...(auth ? { auth } : {}),
  });
  return {
    send: (from: string, to: string[], raw: Buffer) => transport.sendMail({ envelope: { from, to }, raw }),
    close: () => transport.close(),
  };
}
