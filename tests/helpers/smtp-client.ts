import net from 'node:net';
import tls from 'node:tls';

/** One SMTP reply: the code, each line's text (after "250-" / "250 "), and the whole text joined. */
export interface SmtpReply {
  code: number;
  lines: string[];
  text: string;
}

export interface SmtpClientOptions {
  host: string;
  port: number;
  /** TLS from the first byte (implicit TLS listener). */
  tls?: boolean;
  localAddress?: string;
  /** Per-reply wait before read() fails; keeps a broken test from hanging. */
  timeoutMs?: number;
}

/**
 * A raw-socket SMTP client for tests: sends exactly the bytes it is given, reads replies one by
 * one, can upgrade with STARTTLS, and reports when the server closes the connection.
 */
export class SmtpTestClient {
  greeting!: SmtpReply;
  /** Resolves when the server (or we) closed the connection. */
  readonly closed: Promise<void>;

  private socket: net.Socket | tls.TLSSocket;
  private buffer = '';
  private readonly replies: SmtpReply[] = [];
  private waiter: ((reply: SmtpReply | null) => void) | null = null;
  private isClosed = false;
  private markClosed!: () => void;
  private readonly timeoutMs: number;

  private constructor(socket: net.Socket | tls.TLSSocket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.attach(socket);
  }

  static async connect(options: SmtpClientOptions): Promise<SmtpTestClient> {
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: options.host, port: options.port, localAddress: options.localAddress });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    const socket = options.tls ? await upgrade(plain) : plain;
    const client = new SmtpTestClient(socket, options.timeoutMs ?? 10_000);
    client.greeting = await client.read();
    return client;
  }

  get secure(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  /** The certificate the server presented, once the connection is encrypted; null before. */
  peerCertificate(): tls.PeerCertificate | null {
    return this.socket instanceof tls.TLSSocket ? this.socket.getPeerCertificate() : null;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async send(line: string): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** Writes raw bytes, exactly as given. */
  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The next reply; fails when the connection closes first or nothing comes in time. */
  read(): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no SMTP reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = (reply) => {
        clearTimeout(timer);
        this.waiter = null;
        if (reply) resolve(reply);
        else reject(new Error('connection closed'));
      };
    });
  }

  async ehlo(name = 'client.test'): Promise<SmtpReply> {
    return this.send(`EHLO ${name}`);
  }

  /** STARTTLS and the TLS handshake (any certificate accepted). */
  async startTls(): Promise<SmtpReply> {
    const reply = await this.send('STARTTLS');
    if (reply.code !== 220) return reply;
    const plain = this.socket as net.Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = await upgrade(plain);
    this.socket = secure;
    this.attach(secure);
    return reply;
  }

  /** AUTH PLAIN with an initial response. */
  authPlain(user: string, pass: string): Promise<SmtpReply> {
    return this.send(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  }

  /** Sends DATA, the message (dot-stuffed by the caller if needed) and the terminator; returns the final reply. */
  async data(message: string | Buffer): Promise<SmtpReply> {
    const go = await this.send('DATA');
    if (go.code !== 354) return go;
    this.write(message);
    this.write('\r\n.\r\n');
    return this.read();
  }

  /** Closes our side and waits until the socket is gone. */
  async close(): Promise<void> {
    if (!this.isClosed) this.socket.destroy();
    await this.closed;
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.isClosed = true;
      this.markClosed();
      this.waiter?.(null);
    });
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    for (;;) {
      const reply = this.takeReply();
      if (!reply) return;
      if (this.waiter) this.waiter(reply);
      else this.replies.push(reply);
    }
  }

  /** Removes one complete (possibly multi-line) reply from the buffer. */
  private takeReply(): SmtpReply | null {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', offset);
      if (end < 0) return null;
      const line = this.buffer.slice(offset, end);
      offset = end + 2;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        this.buffer = this.buffer.slice(offset);
        const code = Number(line.slice(0, 3));
        const texts = lines.map((l) => l.slice(4));
        return { code, lines: texts, text: texts.join('\n') };
      }
    }
  }
}

/** TLS handshake on a connected socket, accepting any certificate (test servers are self-signed). */
function upgrade(socket: net.Socket): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, rejectUnauthorized: false }, () => {
      secure.off('error', reject);
      resolve(secure);
    });
    secure.once('error', reject);
  });
}
