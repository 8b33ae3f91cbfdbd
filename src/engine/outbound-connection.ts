import net from 'node:net';
import { Readable } from 'node:stream';
import type { Config } from '../config/schema.ts';
import type { DeliveryStage } from '../mail/delivery-outcome.ts';
import type { NextHop } from './routing.ts';
import type { Egress } from '../ippool/egress.ts';
import { inspectTlsSocket, type TlsSession } from './tls/tls-session.ts';
import {
  askSmtpUtf8OnNextMail,
  connectionFlags,
  refusedRecipientErrors,
  serverExtensions,
  SMTPConnection,
  socketOf,
  type SMTPConnectionSendInfo,
  type SMTPError,
} from '../vendor/nodemailer.ts';

/**
 * One outbound SMTP session to a next hop, bound to an egress address and greeting with that
 * address's host name. Wraps nodemailer's SMTPConnection; the TCP socket is opened here so the
 * connect phase has its own timeout and errors (EADDRNOTAVAIL, ECONNREFUSED) stay distinct from
 * the greeting phase.
 */

export type DeliveryTimeouts = Config['delivery']['timeouts'];

/** How long a closing connection may take to answer QUIT and close before it is cut. */
const QUIT_GRACE_MS = 2_000;
/**
 * The slowest a server may take the message data, for the transaction's deadline: the floor
 * Rookery asks of its own submission clients (smtp.minDataRate's default).
 */
const MIN_BODY_BYTES_PER_SECOND = 1024;

export interface OpenOptions {
  hop: NextHop;
  egress: Egress;
  timeouts: DeliveryTimeouts;
  /** Skip STARTTLS (used for the plaintext retry after a failed TLS handshake). */
  ignoreTLS?: boolean;
  /** Roots the MX certificate is checked against (tests); the system's by default. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Aborting it destroys the connection at once, at any stage (a shutdown out of time). */
  signal?: AbortSignal;
  /** Called once the TCP connection is up, and once when it is gone. */
  onSocketOpen?: () => void;
  onSocketClose?: () => void;
}

/** An error from opening a connection, with the stage it failed at. */
export interface OpenFailure {
  error: unknown;
  stage: DeliveryStage;
}

export type SendResult =
  | { ok: true; info: SMTPConnectionSendInfo }
  | {
      ok: false;
      error: SMTPError;
      /** Stage the transaction had reached when it failed. */
      stage: DeliveryStage;
      /** True once message bytes were handed to the socket (after the server's 354). */
      bodyStarted: boolean;
      /** Recipients refused at RCPT TO before the failure, with their errors. */
      rejectedErrors: SMTPError[];
    };

/**
 * A reply's time limit (the socket timeout) measures silence, so a server that drips its replies
 * a byte at a time would never trip it and could hold a connection for ever (a tarpit). Each
 * phase therefore also has a deadline, the sum of its steps' limits: the session setup
 * (greeting, EHLO, STARTTLS, EHLO again) and each transaction (MAIL, each RCPT, DATA, the data
 * at MIN_BODY_BYTES_PER_SECOND, the reply to the final dot). Past it the connection is cut, as
 * a timeout.
 */
export class OutboundConnection {
  /** Completed transactions on this connection. */
  transactions = 0;
  private ended = false;
  private readonly endListeners: Array<() => void> = [];

  /** Settles when the TCP socket has closed. */
  private readonly socketClosed: Promise<void>;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly smtp: SMTPConnection,
    private readonly socket: net.Socket,
    readonly hop: NextHop,
    readonly egress: Egress,
    private readonly timeouts: DeliveryTimeouts,
    signal: AbortSignal | undefined,
  ) {
    smtp.on('end', () => this.markEnded());
    smtp.on('error', () => this.markEnded());
    this.socketClosed = socket.destroyed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
    if (signal) {
      const onAbort = () => this.destroy();
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      void this.socketClosed.then(() => signal.removeEventListener('abort', onAbort));
    }
  }

  /** Connects, reads the greeting, EHLO (HELO), STARTTLS when offered. Rejects with an OpenFailure. */
  static async open(options: OpenOptions): Promise<OutboundConnection> {
    const { hop, egress, timeouts } = options;
    const socket = await connectSocket(hop, egress, timeouts.connect, options.signal).catch((error: unknown) => {
      throw { error, stage: 'connect' } satisfies OpenFailure;
    });
    options.onSocketOpen?.();
    if (options.onSocketClose) socket.once('close', options.onSocketClose);

    const servername = net.isIP(hop.name) ? undefined : hop.name;
    const smtp = new SMTPConnection({
      connection: socket,
      host: hop.host,
      port: hop.port,
      servername,
      name: egress.hostname,
      // MTA-to-MTA practice: encrypt when offered, and go on in plaintext when the server refuses
      // STARTTLS. The certificate is checked after the handshake (tlsSession), not by it: a
      // policy that needs it valid (tls-requirement.ts) refuses the session with the reason.
      opportunisticTLS: true,
      ignoreTLS: options.ignoreTLS === true,
      tls: { rejectUnauthorized: false, servername, ...(options.ca ? { ca: options.ca } : {}) },
      // The socket is already connected: the setup budget (greeting, STARTTLS) is the greeting timeout.
      connectionTimeout: timeouts.greeting,
      greetingTimeout: timeouts.greeting,
      socketTimeout: timeouts.command,
      logger: false,
    });
    const connection = new OutboundConnection(smtp, socket, hop, egress, timeouts, options.signal);
    const disarm = connection.deadline(timeouts.greeting + 3 * timeouts.command);
    try {
      await new Promise<void>((resolve, reject) => {
        smtp.once('error', reject);
        smtp.connect((err) => (err ? reject(err) : resolve()));
      });
    } catch (error) {
      smtp.close();
      socket.destroy();
      throw { error, stage: setupStage(smtp, socket) } satisfies OpenFailure;
    } finally {
      disarm();
    }
    return connection;
  }

  /** Open, not failed, and the server has not closed it. */
  get usable(): boolean {
    const socket = socketOf(this.smtp);
    return !this.ended && !connectionFlags(this.smtp).destroyed && !!socket && !socket.destroyed && socket.writable;
  }

  get secure(): boolean {
    return connectionFlags(this.smtp).secure;
  }

  /** The server announced SMTPUTF8 (RFC 6531) in its EHLO reply. */
  get offersSmtpUtf8(): boolean {
    return serverExtensions(this.smtp).includes('SMTPUTF8');
  }

  /** The session's TLS (version, cipher, certificate checked against the MX name), null in plaintext; read once. */
  get tlsSession(): TlsSession | null {
    if (this.tlsChecked === undefined) this.tlsChecked = inspectTlsSocket(socketOf(this.smtp), this.hop.name);
    return this.tlsChecked;
  }
  private tlsChecked: TlsSession | null | undefined;

  /** Calls `listener` once the connection is gone (closed by either side or failed). */
  onEnd(listener: () => void): void {
    if (this.ended) listener();
    else this.endListeners.push(listener);
  }

  /**
   * One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA. Never rejects. With
   * `smtpUtf8` MAIL FROM carries the SMTPUTF8 parameter (the caller has seen offersSmtpUtf8).
   */
  send(sender: string, recipients: string[], body: Buffer, options: { smtpUtf8?: boolean } = {}): Promise<SendResult> {
    let stage: DeliveryStage = 'mail';
    let bodyStarted = false;
    const socket = socketOf(this.smtp);
    const message = new Readable({
      read() {
        // Read only once the server answered DATA with 354.
        bodyStarted = true;
        stage = 'data';
        // The body and the final dot go out in one write: both are written before the uncork.
        socket?.cork();
        this.push(body);
        this.push(null);
        if (socket) setImmediate(() => socket.uncork());
      },
    });
    message.once('end', () => {
      // Waiting for the reply to the final dot may take longer than any other reply (content
      // scanning); RFC 5321 4.5.3.2.6 suggests 10 minutes.
      stage = 'dot';
      socket?.setTimeout(this.timeouts.dataDone);
    });
    const { command, dataDone } = this.timeouts;
    const disarm = this.deadline((recipients.length + 2) * command + dataDone + Math.ceil((body.length / MIN_BODY_BYTES_PER_SECOND) * 1000));
    const unask = options.smtpUtf8 ? askSmtpUtf8OnNextMail(this.smtp) : () => undefined;
    return new Promise<SendResult>((resolve) => {
      this.smtp.send({ from: sender, to: recipients, size: body.length, use8BitMime: hasEightBit(body) }, message, (err, info) => {
        disarm();
        unask();
        if (socket && !socket.destroyed) socket.setTimeout(this.timeouts.command);
        if (!err) {
          this.transactions++;
          return resolve({ ok: true, info: info! });
        }
        const all = (err as SMTPError & { rejectedErrors?: SMTPError[] }).rejectedErrors;
        const rejectedErrors = all ?? refusedRecipientErrors(this.smtp);
        resolve({ ok: false, error: err, stage, bodyStarted, rejectedErrors });
      });
    });
  }

  /** RSET, to reuse the connection after a refused transaction. Resolves false when it failed. */
  reset(): Promise<boolean> {
    return new Promise((resolve) => this.smtp.reset((err) => resolve(!err)));
  }

  /** QUIT and close; resolves once the socket has closed (forcibly after a short grace period). */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.usable) this.smtp.quit();
    else this.smtp.close();
    const force = setTimeout(() => {
      this.smtp.close();
      this.socket.destroy();
    }, QUIT_GRACE_MS);
    force.unref();
    this.closing = this.socketClosed.then(() => clearTimeout(force));
    return this.closing;
  }

  /**
   * Cuts the connection at once, whatever it is doing: a transaction in progress fails with a
   * connection error. The TLS socket (after STARTTLS) and the TCP socket under it both go.
   */
  destroy(): void {
    socketOf(this.smtp)?.destroy();
    this.socket.destroy();
  }

  /** Cuts the connection with a timeout error once `ms` have passed, unless the returned function is called first. */
  private deadline(ms: number): () => void {
    const timer = setTimeout(() => {
      const error = Object.assign(new Error(`not done within ${ms} ms, the sum of its steps' time limits`), { code: 'ETIMEDOUT' });
      // The socket SMTPConnection reads (TLS after STARTTLS) fails with the error; the TCP one goes too.
      socketOf(this.smtp)?.destroy(error);
      this.socket.destroy(error);
    }, ms);
    return () => clearTimeout(timer);
  }

  /** Settles when the TCP socket has closed, whoever closed it. */
  whenClosed(): Promise<void> {
    return this.socketClosed;
  }

  private markEnded(): void {
    if (this.ended) return;
    this.ended = true;
    this.endListeners.splice(0).forEach((listener) => listener());
  }
}

/**
 * Which setup step SMTPConnection was in when it failed. The client writes nothing before a
 * valid 220 greeting (then EHLO), so an untouched socket means the greeting failed.
 */
function setupStage(smtp: SMTPConnection, socket: net.Socket): DeliveryStage {
  if (connectionFlags(smtp).upgrading) return 'starttls';
  return socket.bytesWritten === 0 ? 'greeting' : 'ehlo';
}

function connectSocket(hop: NextHop, egress: Egress, timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const family = egress.address ? net.isIP(egress.address) : 0;
    const socket = net.connect({
      host: hop.host,
      port: hop.port,
      ...(egress.address ? { localAddress: egress.address } : {}),
      // A name (static route) must resolve to the family the egress address can reach.
      ...(family && net.isIP(hop.host) === 0 ? { family } : {}),
    });
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`connection to ${hop.host}:${hop.port} timed out`), {
        code: 'ETIMEDOUT',
        timeoutType: 'CONNECT_TIMEOUT',
      });
      socket.destroy(err);
    }, timeoutMs);
    const onAbort = () => socket.destroy(signal!.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal?.removeEventListener('abort', onAbort));
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      // SMTPConnection attaches its own handlers next; an error in between must not go unhandled.
      socket.on('error', () => {});
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
  });
}

function hasEightBit(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) if (body[i]! > 0x7f) return true;
  return false;
}
