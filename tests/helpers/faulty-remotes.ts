import net from 'node:net';

/*
 * Remote SMTP servers that misbehave, on loopback: raw TCP servers under a test's control, a
 * tarpit, and a proxy in front of a real sink that cuts a session at a chosen moment. Every
 * socket they accepted is destroyed, and every timer cleared, on close().
 */

export interface RawServer {
  host: string;
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** A TCP server whose connections `onConnection` handles; every socket it accepted is destroyed on close. */
export async function rawServer(onConnection: (socket: net.Socket, index: number) => void, options: { host?: string; port?: number } = {}): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket, accepted++);
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host,
    port,
    accepted: () => accepted,
    close: async () => {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The bytes of `text`, one at a time; `forever` repeats it without end (a reply of endless continuation lines). */
function* bytesOf(text: string, forever = false): Generator<Buffer> {
  const bytes = Buffer.from(text);
  do for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
  while (forever);
}

const endlessReply = () => bytesOf('250-tarpit.dest.test\r\n', true);

/** Writes one byte of `bytes` to `socket` every `intervalMs` until the socket closes. */
function drip(socket: net.Socket, bytes: Iterator<Buffer>, intervalMs: number): void {
  const next = () => {
    const byte = bytes.next();
    if (!byte.done && !socket.destroyed) socket.write(byte.value);
  };
  next();
  const timer = setInterval(next, intervalMs);
  socket.on('close', () => clearInterval(timer));
}

/**
 * A tarpit: accepts connections and answers one byte per `intervalMs` (a minute, as spam traps
 * do). At `from: 'connect'` it drips its greeting; at `from: 'ehlo'` it greets at once and
 * drips a reply to EHLO that never ends, so no silence lasts as long as a reply's time limit.
 * `closedByClient` counts the connections the client gave up on.
 */
export async function startTarpit(options: { host?: string; port?: number; intervalMs?: number; from?: 'connect' | 'ehlo' } = {}): Promise<RawServer & { closedByClient(): number }> {
  const intervalMs = options.intervalMs ?? 60_000;
  let closedByClient = 0;
  const server = await rawServer(
    (socket) => {
      socket.on('end', () => closedByClient++);
      const greeting = '220 tarpit.dest.test ESMTP\r\n';
      if (options.from !== 'ehlo') return drip(socket, bytesOf(greeting), intervalMs);
      socket.write(greeting);
      let received = '';
      const onData = (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (!/^EHLO [^\r]*\r\n/im.test(received)) return;
        socket.off('data', onData);
        drip(socket, endlessReply(), intervalMs);
      };
      socket.on('data', onData);
    },
    options,
  );
  return { ...server, closedByClient: () => closedByClient };
}

/** Where a proxied session is cut. */
export type Cut =
  /** After this many bytes of message data went through to the server: a reset (RST) of the client's connection. */
  | { kind: 'reset-in-data'; afterBytes: number }
  /** The server accepted the message: its reply to the final dot is dropped and the connection closed. */
  | { kind: 'close-before-final-reply' }
  /** The server accepted the message: in place of its reply to the final dot, a reply that never ends, one byte per `intervalMs`. */
  | { kind: 'drip-final-reply'; intervalMs: number };

/**
 * A proxy in front of an SMTP server that forwards both ways and cuts its first `sessions`
 * sessions at `cut` (later ones pass untouched). Understands just enough SMTP to know when the
 * client is in DATA: after a 354 reply, until the line with a lone dot.
 */
export async function startCuttingProxy(upstream: { host: string; port: number }, cut: Cut, options: { host?: string; port?: number; sessions?: number } = {}): Promise<RawServer & { cuts(): number }> {
  let cuts = 0;
  const proxy = await rawServer((client, index) => {
    const remote = net.connect(upstream.port, upstream.host);
    remote.on('error', () => client.destroy());
    client.on('close', () => remote.destroy());
    remote.on('close', () => client.destroy());
    if (index >= (options.sessions ?? 1)) {
      client.pipe(remote).pipe(client);
      return;
    }
    let inData = false;
    let dataBytes = 0;
    let finalDotSent = false;
    let tail = '';
    remote.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (finalDotSent && /^2\d\d /m.test(text) && cut.kind !== 'reset-in-data') {
        cuts++;
        finalDotSent = false;
        remote.removeAllListeners('data');
        if (cut.kind === 'close-before-final-reply') client.destroy();
        else drip(client, endlessReply(), cut.intervalMs);
        return;
      }
      if (/^354 /m.test(text)) inData = true;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      if (inData && cut.kind === 'reset-in-data' && dataBytes + chunk.length > cut.afterBytes) {
        remote.write(chunk.subarray(0, Math.max(0, cut.afterBytes - dataBytes)));
        cuts++;
        client.resetAndDestroy();
        remote.destroy();
        return;
      }
      if (inData) {
        dataBytes += chunk.length;
        tail = (tail + chunk.toString('latin1')).slice(-5);
        if (tail.endsWith('\r\n.\r\n')) {
          inData = false;
          finalDotSent = true;
        }
      }
      remote.write(chunk);
    });
  }, options);
  return { ...proxy, cuts: () => cuts };
}

/**
 * A bare SMTP server that accepts everything and answers the final dot with `finalReply` byte for
 * byte (a NUL, control characters: what smtp-server would clean up before sending). Counts the
 * messages it answered.
 */
export async function startRawReplyServer(finalReply: string, options: { host?: string; port?: number } = {}): Promise<RawServer & { messages(): number }> {
  let messages = 0;
  const server = await rawServer((socket) => {
    socket.write('220 raw.dest.test ESMTP\r\n');
    let inData = false;
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buffered.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffered = buffered.slice(end + 5);
          inData = false;
          messages++;
          socket.write(Buffer.from(`${finalReply}\r\n`, 'latin1'));
          continue;
        }
        const end = buffered.indexOf('\r\n');
        if (end < 0) return;
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (/^EHLO/i.test(line)) socket.write('250-raw.dest.test\r\n250 8BITMIME\r\n');
        else if (/^DATA/i.test(line)) {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (/^QUIT/i.test(line)) socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  }, options);
  return { ...server, messages: () => messages };
}
