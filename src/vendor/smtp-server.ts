import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

/**
 * smtp-server with the few things its hooks cannot express. The library's hooks (onConnect,
 * onAuth, onMailFrom, onRcptTo, onData, onClose) carry the policy; this file only adds:
 *  - admission of each connection the moment it is accepted, before any TLS handshake, greeting
 *    delay or reverse lookup (onConnect runs only after all three, and until then the library
 *    counts a socket against nothing but maxClients, which is not used: the guard's admission
 *    replaces it), and a hard deadline from accept to the greeting, so a client that never
 *    finishes its TLS handshake (or trickles it) cannot hold a socket;
 *  - a command gate that sees every command line before the library does (line length,
 *    shutdown, AUTH availability and lockout), because no hook runs per command;
 *  - the greeting delay as a setting (the library waits a fixed 100 ms before every greeting,
 *    which caps how fast new sessions can start), and our own reply to a client that sends
 *    anything, a whole line or not, before the greeting;
 *  - a time limit from each reply to the next complete command line: the library's idle timer
 *    is reset by every byte, so a client trickling one byte at a time would never meet it;
 *  - replies whose text already starts with an enhanced status code ("5.7.1 ...", as every
 *    RookeryError does) are sent as they are, without the library prefixing a second code;
 *  - a handle on open sessions, to end one at its time limit and to drop the rest at shutdown.
 * This takes the library's internal connection class (smtp-server/lib/smtp-connection), copies
 * of SMTPServer.connect and SMTPConnection.init, the server's _acceptSocket, _upgrade and
 * _pendingSockets, and the connection members _onCommand, _onClose, _whenWritable,
 * _setListeners, _server, _upgrading, _ready, _closing, _closed, _nextHandler and _socket.
 * tests/unit/vendor-contract.test.ts checks each of them, so an upgrade that changes one fails
 * there rather than in production.
 */

export interface GateReply {
  code: number;
  /** Reply text, starting with its enhanced status code. A 421 closes the connection. */
  text: string;
}

/** A connection's place among the open ones, taken when it is accepted. */
export interface Admission {
  /** The connection has reached its SMTP session (after any TLS handshake): its id from now on. */
  started(sessionId: string): void;
  /** The connection's socket has closed. */
  release(): void;
}

/** What the server asks of its owner besides the library's hooks. */
export interface SessionGuard {
  /**
   * Admits a connection as it is accepted, or refuses it with a reply (a 421), which is written
   * before the socket is closed; a socket of an implicit TLS listener is closed without it, as
   * nothing can be said before the handshake.
   */
  admit(remoteAddress: string): Admission | GateReply;
  /** Looks at a command line before smtp-server handles it; a reply replaces the command. */
  command(line: Buffer, session: SMTPServerSession, inAuthExchange: boolean): GateReply | null;
  /** The reply (a 421) to a client that wrote before its greeting. */
  earlyTalker(remoteAddress: string): GateReply;
  /** The reply (a 421) when the next command line did not arrive within the command time limit. */
  commandTimeout(session: SMTPServerSession): GateReply;
}

export interface GuardTiming {
  /** Pause between accepting a connection and starting its greeting (0: none). */
  greetingDelayMs: number;
  /**
   * From each reply until the next command line is complete; also how long a new connection may
   * take over its TLS handshake: it must be greeted within the greeting delay, this and the
   * reverse lookup's limit of being accepted, or its socket is closed.
   */
  commandTimeoutMs: number;
}

const HAS_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;
/** smtp-server gives up on a client's reverse lookup after this long (a fixed value of the library). */
const REVERSE_LOOKUP_LIMIT_MS = 1_500;
/** How long a refused socket may stay open for its 421 to reach the client. */
const REFUSAL_LINGER_MS = 1_000;

/** An accepted socket's admission, and its deadline for being greeted. */
interface Accepted {
  admission: Admission;
  deadline: NodeJS.Timeout;
  /** Once it has one. */
  connection: GatedConnection | null;
}

class GatedConnection extends SMTPConnection {
  private greetingTimer: NodeJS.Timeout | null = null;
  private commandTimer: NodeJS.Timeout | null = null;
  private greeted = false;

  constructor(
    private readonly owner: GatedSmtpServer,
    socket: net.Socket | tls.TLSSocket,
    options: ConstructorParameters<typeof SMTPConnection>[2],
    private readonly accepted: Accepted | undefined,
  ) {
    super(owner, socket, options);
  }

  /*
   * Same as SMTPConnection.init, with the listener's greeting delay instead of a fixed 100 ms,
   * without the maxClients check (admission at accept replaces it), and with any byte before the
   * greeting taken for early talking: the library sees only complete lines, so "EHLO x" during
   * the delay and its line end after it would pass.
   */
  override init(): void {
    this._setListeners(() => {
      this._socket.on('data', this.onEarlyData);
      const delay = this.owner.timing.greetingDelayMs;
      if (delay <= 0) return this.connectionReady();
      this.greetingTimer = setTimeout(() => this.connectionReady(), delay);
    });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (!this.greeted) this.greet();
    super.send(code, data, typeof data === 'string' && HAS_ENHANCED_CODE.test(data) ? false : context);
    this.armCommandTimer(code);
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.clearCommandTimer();
    // Bytes buffered during a TLS handshake are the library's to discard; nothing may be written then.
    if (this._upgrading || this._closing) return super._onCommand(command, callback);
    if (!this._ready) return this.refuseEarlyTalker();
    const reply = this.owner.guard.command(command, this.session, this._nextHandler !== false);
    if (!reply) return super._onCommand(command, callback);
    // A refused line also ends an AUTH exchange in progress.
    this._nextHandler = false;
    this.send(reply.code, reply.text);
    if (reply.code === 421) return; // send() has closed the connection; read nothing more
    const next = callback ?? (() => undefined);
    setImmediate(() => this._whenWritable(next));
  }

  override _onClose(): void {
    if (this.greetingTimer) clearTimeout(this.greetingTimer);
    this.clearCommandTimer();
    super._onClose();
    this.owner.live.delete(this);
  }

  /** The first reply (the greeting, or a refusal): the connection has met its deadline. */
  private greet(): void {
    this.greeted = true;
    this._socket.off('data', this.onEarlyData);
    if (this.accepted) clearTimeout(this.accepted.deadline);
  }

  private readonly onEarlyData = (): void => {
    if (!this._ready && !this._closing) this.refuseEarlyTalker();
  };

  private refuseEarlyTalker(): void {
    const early = this.owner.guard.earlyTalker(this.remoteAddress);
    this.send(early.code, early.text);
  }

  /**
   * After a reply the client owes us its next command line, except after 354 (the message
   * follows; its pace is judged as it arrives) and once the connection is closing.
   */
  private armCommandTimer(code: number): void {
    this.clearCommandTimer();
    if (code === 354 || code === 421 || this._closing || this._closed) return;
    this.commandTimer = setTimeout(() => {
      this.commandTimer = null;
      if (this._closing || this._closed) return;
      const reply = this.owner.guard.commandTimeout(this.session);
      this.send(reply.code, reply.text);
    }, this.owner.timing.commandTimeoutMs);
  }

  private clearCommandTimer(): void {
    if (this.commandTimer) clearTimeout(this.commandTimer);
    this.commandTimer = null;
  }
}

export class GatedSmtpServer extends SMTPServer {
  /** Every session whose socket is still open, including those smtp-server's close() gave up on. */
  readonly live = new Set<SMTPConnection>();
  /** Each accepted socket's admission: by its TCP socket, and by the TLS socket over it once there is one. */
  private readonly accepted = new WeakMap<net.Socket, Accepted>();

  constructor(
    options: SMTPServerOptions,
    readonly guard: SessionGuard,
    readonly timing: GuardTiming,
  ) {
    super({ ...options, maxClients: 0 });
  }

  /** The library's guard of a freshly accepted socket, after our admission. */
  override _acceptSocket(socket: net.Socket, handshake: boolean): (() => void) | false {
    const admission = this.guard.admit(socket.remoteAddress ?? '');
    if (!('release' in admission)) {
      refuse(socket, handshake ? null : admission);
      return false;
    }
    const { greetingDelayMs, commandTimeoutMs } = this.timing;
    const accepted: Accepted = {
      admission,
      deadline: setTimeout(() => this.greetingOverdue(socket, accepted), greetingDelayMs + commandTimeoutMs + REVERSE_LOOKUP_LIMIT_MS),
      connection: null,
    };
    this.accepted.set(socket, accepted);
    socket.once('close', () => {
      clearTimeout(accepted.deadline);
      admission.release();
    });
    return super._acceptSocket(socket, handshake);
  }

  /** The library's implicit TLS handshake; the TLS socket carries the admission of the TCP socket below it. */
  override _upgrade(socket: net.Socket, callback: Parameters<SMTPServer['_upgrade']>[1]): void {
    super._upgrade(socket, (err, tlsSocket) => {
      const accepted = this.accepted.get(socket);
      if (tlsSocket && accepted) this.accepted.set(tlsSocket, accepted);
      callback(err, tlsSocket);
    });
  }

  // Same as SMTPServer.connect, with our connection class, which learns its admission.
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const accepted = this.accepted.get(socket);
    const connection = new GatedConnection(this, socket, socketOptions, accepted);
    if (accepted) {
      accepted.connection = connection;
      accepted.admission.started(connection.id);
    }
    this.connections.add(connection);
    this.live.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
  }

  /** Sends a 421 reply with `text` on the session's connection, which closes it. */
  endSession(sessionId: string, text: string): void {
    for (const connection of this.live) {
      if (connection.id === sessionId) connection.send(421, text);
    }
  }

  /**
   * Destroys the sockets of sessions still open after the shutdown grace period. A socket in the
   * middle of a STARTTLS handshake is left to smtp-server's own close timer: tearing a TLS socket
   * down from below during a handshake is not safe.
   */
  dropSessions(): void {
    for (const connection of this.live) {
      if (!connection._upgrading && !connection._socket.destroyed) connection._socket.destroy();
    }
  }

  /**
   * Closes a connection not greeted in time: the topmost socket goes (a TLS socket still in its
   * handshake is in _pendingSockets; tearing a TLS socket down from below in a handshake is not safe).
   */
  private greetingOverdue(socket: net.Socket, accepted: Accepted): void {
    (accepted.connection?._socket ?? this._pendingSockets.get(socket) ?? socket).destroy();
  }
}

/** Answers a refused socket with `reply` (none: just closes it), then closes it. */
function refuse(socket: net.Socket, reply: GateReply | null): void {
  socket.on('error', () => undefined);
  if (!reply) return void socket.destroy();
  socket.end(`${reply.code} ${reply.text}\r\n`);
  // Read and drop what the client sends, so that its close is seen; a client that never closes is cut off.
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  socket.once('close', () => clearTimeout(linger));
}
