import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface LoadResult {
  /** Per message: Message-ID -> time the 250 arrived (ms epoch). */
  ackedAt: Map<string, number>;
  /** Accept latencies in ms (submit start -> 250). */
  latencies: number[];
  failures: number;
  startedAt: number;
  endedAt: number;
}

function connect(host: string, port: number): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({ host, port, secure: false, ignoreTLS: true, name: 'bench.client' });
    conn.once('error', reject);
    conn.connect(() => resolve(conn));
  });
}

function send(conn: SMTPConnection, from: string, to: string, raw: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    conn.send({ from, to: [to] }, raw, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Submits `messages` (each with its own Message-ID) over `sessions` concurrent SMTP sessions that
 * stay open, one message after another per session, as an application with a connection pool does.
 */
export async function submitLoad(options: {
  host: string;
  port: number;
  sessions: number;
  messages: Array<{ messageId: string; from: string; to: string; raw: Buffer }>;
}): Promise<LoadResult> {
  const result: LoadResult = { ackedAt: new Map(), latencies: [], failures: 0, startedAt: Date.now(), endedAt: 0 };
  let next = 0;
  const worker = async () => {
    let conn = await connect(options.host, options.port);
    while (next < options.messages.length) {
      const message = options.messages[next++]!;
      const start = performance.now();
      try {
        await send(conn, message.from, message.to, message.raw);
        result.latencies.push(performance.now() - start);
        result.ackedAt.set(message.messageId, Date.now());
      } catch {
        result.failures++;
        conn.close();
        conn = await connect(options.host, options.port);
      }
    }
    conn.quit();
  };
  await Promise.all(Array.from({ length: options.sessions }, worker));
  result.endedAt = Date.now();
  return result;
}
