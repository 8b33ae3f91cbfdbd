import SMTPConnection from 'nodemailer/lib/smtp-connection';

/**
 * The built-in load generator: nodemailer's SMTP client, one transaction at a time per session.
 * `reuse` keeps each session's connection open for message after message, as an application with
 * a connection pool does; `new` opens a fresh connection per message (connect, EHLO, MAIL, RCPT,
 * DATA, QUIT), as an application that sends one message per request does.
 */

export type ConnectionMode = 'new' | 'reuse';

export interface LoadResult {
  /** Per message: Message-ID -> time the 250 arrived (ms epoch). */
  ackedAt: Map<string, number>;
  /** Accept latencies in ms (see `latencyFrom`). */
  latencies: number[];
  /** What each latency is measured from; it always ends at the 250 that answers the message data. */
  latencyFrom: string;
  failures: number;
  startedAt: number;
  endedAt: number;
}

/** The start point of a latency per mode, as the results state it. */
export const LATENCY_FROM: Record<ConnectionMode, string> = {
  reuse: 'MAIL FROM on an open session (MAIL, RCPT, DATA, the message) to the 250 after the data',
  new: 'the start of the TCP connection (connect, greeting, EHLO, MAIL, RCPT, DATA, the message) to the 250 after the data: what the application waits for',
};

function connect(host: string, port: number): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({ host, port, secure: false, ignoreTLS: true, name: 'bench.client' });
    // Stays attached (a no-op once connected): a later 'error' event, reported to the send
    // callback as well, must not go unhandled and end the run.
    conn.on('error', reject);
    conn.connect(() => resolve(conn));
  });
}

function send(conn: SMTPConnection, from: string, to: string, raw: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    conn.send({ from, to: [to] }, raw, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Sends QUIT and resolves once the connection is gone (nodemailer closes it on the 221), so a
 * session in `new` mode holds one connection at a time, as smtp-source does.
 */
function quit(conn: SMTPConnection): Promise<void> {
  return new Promise((resolve) => {
    conn.once('end', resolve);
    conn.once('error', () => {
      conn.close();
      resolve();
    });
    conn.quit();
  });
}

/**
 * Submits `messages` (each with its own Message-ID) over `sessions` concurrent SMTP sessions, one
 * message after another per session.
 */
export async function submitLoad(options: {
  host: string;
  port: number;
  sessions: number;
  connection?: ConnectionMode;
  messages: Array<{ messageId: string; from: string; to: string; raw: Buffer }>;
}): Promise<LoadResult> {
  const mode = options.connection ?? 'reuse';
  const result: LoadResult = { ackedAt: new Map(), latencies: [], latencyFrom: LATENCY_FROM[mode], failures: 0, startedAt: Date.now(), endedAt: 0 };
  let next = 0;
  const accepted = (messageId: string, start: number) => {
    result.latencies.push(performance.now() - start);
    result.ackedAt.set(messageId, Date.now());
  };

  const reuseWorker = async () => {
    let conn = await connect(options.host, options.port);
    while (next < options.messages.length) {
      const message = options.messages[next++]!;
      const start = performance.now();
      try {
        await send(conn, message.from, message.to, message.raw);
        accepted(message.messageId, start);
      } catch {
        result.failures++;
        conn.close();
        conn = await connect(options.host, options.port);
      }
    }
    await quit(conn);
  };

  const newWorker = async () => {
    while (next < options.messages.length) {
      const message = options.messages[next++]!;
      const start = performance.now();
      let conn: SMTPConnection | undefined;
      try {
        conn = await connect(options.host, options.port);
        await send(conn, message.from, message.to, message.raw);
        accepted(message.messageId, start);
        await quit(conn);
      } catch {
        result.failures++;
        conn?.close();
      }
    }
  };

  await Promise.all(Array.from({ length: options.sessions }, mode === 'new' ? newWorker : reuseWorker));
  result.endedAt = Date.now();
  return result;
}
