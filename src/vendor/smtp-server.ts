import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

/**
 * smtp-server with the few things its hooks cannot express. The library's hooks (onConnect,
 * onAuth, onMailFrom, onRcptTo, onData, onClose) carry the policy; this file only adds:
 *  - a command gate that sees every command line before the library does (line length,
 *    shutdown, AUTH availability and lockout), because no hook runs per command;
 *  - replies whose text already starts with an enhanced status code ("5.7.1 ...", as every
 *    RookeryError does) are sent as they are, without the library prefixing a second code;
 *  - a handle on open sessions, to end one at its time limit and to drop the rest at shutdown.
 * This takes the library's internal connection class (smtp-server/lib/smtp-connection), a copy
 * of SMTPServer.connect, and the connection members _onCommand, _onClose, _whenWritable,
 * _upgrading, _ready, _closing, _nextHandler and _socket. tests/unit/vendor-contract.test.ts
 * checks each of them, so an upgrade that changes one fails there rather than in production.
 */

export interface GateReply {
  code: number;
  /** Reply text, starting with its enhanced status code. A 421 closes the connection. */
  text: string;
}

/** Looks at a command line before smtp-server handles it; a reply replaces the command. */
export type CommandGate = (line: Buffer, session: SMTPServerSession, inAuthExchange: boolean) => GateReply | null;

const HAS_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

class GatedConnection extends SMTPConnection {
  constructor(
    private readonly owner: GatedSmtpServer,
    socket: net.Socket | tls.TLSSocket,
    options: ConstructorParameters<typeof SMTPConnection>[2],
  ) {
    super(owner, socket, options);
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    super.send(code, data, typeof data === 'string' && HAS_ENHANCED_CODE.test(data) ? false : context);
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    // Bytes buffered during a TLS handshake or sent before the greeting are the library's to
    // discard or refuse; nothing may be written in those states.
    if (this._upgrading || !this._ready || this._closing) return super._onCommand(command, callback);
    const reply = this.owner.gate(command, this.session, this._nextHandler !== false);
    if (!reply) return super._onCommand(command, callback);
    // A refused line also ends an AUTH exchange in progress.
    this._nextHandler = false;
    this.send(reply.code, reply.text);
    if (reply.code === 421) return; // send() has closed the connection; read nothing more
    const next = callback ?? (() => undefined);
    setImmediate(() => this._whenWritable(next));
  }

  override _onClose(): void {
    super._onClose();
    this.owner.live.delete(this);
  }
}

export class GatedSmtpServer extends SMTPServer {
  /** Every session whose socket is still open, including those smtp-server's close() gave up on. */
  readonly live = new Set<SMTPConnection>();

  constructor(
    options: SMTPServerOptions,
    readonly gate: CommandGate,
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
