import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

/**
 * smtp-server with the few things its hooks cannot express. The library's hooks (onConnect,
 * onAuth, onMailFrom, onRcptTo, onData, onClose) carry the policy; this file only adds:
 *  - a command gate that sees every command line before the library does (line length,
 *    shutdown, AUTH availability and lockout), because no hook runs per command;
 *  - the greeting delay as a setting (the library waits a fixed 100 ms before every greeting,
 *    which caps how fast new sessions can start), and our own reply to a client that talks
 *    before the greeting;
 *  - a time limit from each reply to the next complete command line: the library's idle timer
 *    is reset by every byte, so a client trickling one byte at a time would never meet it;
 *  - replies whose text already starts with an enhanced status code ("5.7.1 ...", as every
 *    RookeryError does) are sent as they are, without the library prefixing a second code;
 *  - a handle on open sessions, to end one at its time limit and to drop the rest at shutdown.
 * This takes the library's internal connection class (smtp-server/lib/smtp-connection), copies
 * of SMTPServer.connect and SMTPConnection.init, and the connection members _onCommand,
 * _onClose, _whenWritable, _setListeners, _server, _upgrading, _ready, _closing, _closed,
 * _nextHandler and _socket. tests/unit/vendor-contract.test.ts checks each of them, so an
 * upgrade that changes one fails there rather than in production.
 */

export interface GateReply {
  code: number;
  /** Reply text, starting with its enhanced status code. A 421 closes the connection. */
  text: string;
}

/** What the server asks of its owner besides the library's hooks. */
export interface SessionGuard {
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
  /** From each reply until the next command line is complete. */
  commandTimeoutMs: number;
}

const HAS_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

class GatedConnection extends SMTPConnection {
  private greetingTimer: NodeJS.Timeout | null = null;
  private commandTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly owner: GatedSmtpServer,
    socket: net.Socket | tls.TLSSocket,
    options: ConstructorParameters<typeof SMTPConnection>[2],
  ) {
    super(owner, socket, options);
  }

  // Same as SMTPConnection.init, with the listener's greeting delay instead of a fixed 100 ms.
  override init(): void {
    this._setListeners(() => {
      if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
        return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
      }
      const delay = this.owner.timing.greetingDelayMs;
      if (delay <= 0) return this.connectionReady();
      this.greetingTimer = setTimeout(() => this.connectionReady(), delay);
    });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    super.send(code, data, typeof data === 'string' && HAS_ENHANCED_CODE.test(data) ? false : context);
    this.armCommandTimer(code);
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.clearCommandTimer();
    // Bytes buffered during a TLS handshake are the library's to discard; nothing may be written then.
    if (this._upgrading || this._closing) return super._onCommand(command, callback);
    if (!this._ready) {
      const early = this.owner.guard.earlyTalker(this.remoteAddress);
      return this.send(early.code, early.text);
    }
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

  constructor(
    options: SMTPServerOptions,
    readonly guard: SessionGuard,
    readonly timing: GuardTiming,
  ) {
    super(options);
  }

  // Same as SMTPServer.connect, with our connection class.
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const connection = new GatedConnection(this, socket, socketOptions);
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
}
