/* eslint-disable @typescript-eslint/no-explicit-any */
import { randomDigits } from '@mailgate/contracts';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { REPLIES, replyText } from './replies.js';

/**
 * smtp-server, extended where its options cannot express what the gateway needs. Everything that touches the
 * library's internals (pinned: smtp-server SMTP_SERVER_PINNED, exactly) is in this file, and `assertSmtpServerInternals()` checks at
 * start-up that they are still there — if an upgrade removed one, ingress refuses to start rather than run
 * without its smuggling and relay guards.
 *
 *  - Line endings in commands: smtp-server splits command lines on /\r?\n/, so a bare LF ends a command and a
 *    bare CR stays inside it. The parser's input is scanned to remember, per command line, whether it ended in
 *    a bare LF or contained a bare CR; the command hook then refuses it (or, for bare LF, lets it through in
 *    `normalize` mode).
 *  - The raw command line is handed to the hook, so MAIL/RCPT are parsed strictly by address.ts rather than by
 *    the library's lenient, Unicode-converting parser.
 *  - PROXY and XCLIENT trust by CIDR (the library matches exact addresses only).
 *  - The greeting delay is ours (the library hard-codes 100 ms); ingress waits in onConnect instead.
 *  - Session ids come from a pooled CSPRNG buffer (the library draws `randomBytes(10)` and parses it through a
 *    BigInt per connection), same format: 16 base-32 digits, 80 random bits.
 *  - Replies whose text starts with an enhanced status code (`5.7.1 …`) are sent as they are, not prefixed with
 *    the library's generic mapping.
 */

export const BARE_LF = 1;
export const BARE_CR = 2;

/** Per-connection view handed to the hooks. */
export interface GuardedConnection {
  readonly id: string;
  readonly session: SMTPServerSession;
  readonly remoteAddress: string;
  /** The client is inside DATA, or a handler (MAIL/RCPT/DATA/AUTH) has not answered yet. */
  readonly busy: boolean;
  readonly ready: boolean;
  readonly secure: boolean;
  /** A multi-line AUTH exchange is in progress (the line is a SASL response, not a command). */
  readonly inAuthExchange: boolean;
  send(code: number, text: string): void;
  close(): void;
  /** Drop a pending SASL continuation (the next line is a command again). */
  cancelAuthExchange(): void;
  /** Reset the library's own unknown-command counter (ingress keeps its own limit). */
  resetLibraryUnknownCounter(): void;
  isKnownCommand(name: string): boolean;
}

export interface CommandRefusal {
  readonly code: number;
  readonly text: string;
  readonly close: boolean;
}

export interface GuardHooks {
  /** A connection object exists (socket accepted; PROXY header, if any, already read). */
  created(conn: GuardedConnection): void;
  /** Before smtp-server handles a command line. Return a refusal to answer it ourselves. */
  beforeCommand(conn: GuardedConnection, line: string, flags: number): CommandRefusal | null;
  /** Must this socket send a PROXY v1 header? */
  expectsProxy(remoteAddress: string | undefined): boolean;
  /** May this (original, pre-XCLIENT) client use XCLIENT? */
  xclientAllowed(originalRemoteAddress: string): boolean;
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

interface ParserState {
  prev: number;
  lineFlags: number;
  flags: number[];
}

function installLineScanner(parser: any): void {
  const state: ParserState = { prev: 0x0a, lineFlags: 0, flags: [] };
  parser.__mailgate = state;
  const write = parser._write.bind(parser);
  const startDataMode = parser.startDataMode.bind(parser);
  parser._write = (chunk: Buffer, enc: BufferEncoding, next: (err?: Error | null) => void) => {
    if (!parser._dataMode && !parser.isClosed && chunk && chunk.length) {
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b === 0x0a) {
          state.flags.push(state.lineFlags | (state.prev === 0x0d ? 0 : BARE_LF));
          state.lineFlags = 0;
        } else if (state.prev === 0x0d) {
          state.lineFlags |= BARE_CR;
        }
        state.prev = b;
      }
    }
    return write(chunk, enc, next);
  };
  parser.startDataMode = (maxBytes?: number) => {
    // Whatever was scanned after the DATA line is message content now, not commands.
    state.flags.length = 0;
    state.lineFlags = 0;
    state.prev = 0x0a;
    return startDataMode(maxBytes);
  };
}

/**
 * The hooks' view of one connection. A class (getters on the prototype), built once per connection: an object
 * literal with seven getters and five closures per call was a visible share of ingress's per-connection CPU.
 */
class ConnectionView implements GuardedConnection {
  constructor(private readonly c: any) {}
  get id(): string {
    return this.c.id as string;
  }
  get session(): SMTPServerSession {
    return this.c.session as SMTPServerSession;
  }
  get remoteAddress(): string {
    return this.c.remoteAddress as string;
  }
  get busy(): boolean {
    return !!this.c._handlerPending || !!this.c._dataStream;
  }
  get ready(): boolean {
    return !!this.c._ready;
  }
  get secure(): boolean {
    return !!this.c.secure;
  }
  get inAuthExchange(): boolean {
    return !!this.c._nextHandler;
  }
  send(code: number, text: string): void {
    this.c.send(code, text);
  }
  close(): void {
    this.c.close();
  }
  cancelAuthExchange(): void {
    this.c._nextHandler = false;
  }
  resetLibraryUnknownCounter(): void {
    this.c._unrecognizedCommands = 0;
  }
  isKnownCommand(name: string): boolean {
    return this.c._isSupported(name) as boolean;
  }
}

class Connection extends (SMTPConnection as any) {
  declare _server: GuardedServer;

  constructor(server: GuardedServer, socket: net.Socket, options: unknown) {
    super(server, socket, options);
    server.hooks.created(this.view());
  }

  view(): GuardedConnection {
    const self = this as any;
    return (self.__view ??= new ConnectionView(self)) as GuardedConnection;
  }

  init(): void {
    const self = this as any;
    self._setListeners(() => {
      const max = self._server.options.maxClients;
      if (max && self._server.connections.size > max) {
        const r = REPLIES.tooManyClients(self.name as string);
        return self.send(r.code, replyText(r));
      }
      setImmediate(() => self.connectionReady());
    });
  }

  _createParser(): unknown {
    const parser = (super._createParser as () => unknown)();
    installLineScanner(parser);
    return parser;
  }

  _onCommand(command: Buffer, callback?: () => void): unknown {
    const self = this as any;
    const state: ParserState | undefined = self._parser?.__mailgate;
    const flags = state?.flags.shift() ?? 0;
    if (!self._upgrading && !self._closing) {
      const refusal = this._server.hooks.beforeCommand(this.view(), command.toString('binary'), flags);
      if (refusal) {
        self.send(refusal.code, refusal.text);
        if (refusal.close) self.close();
        setImmediate(() => callback?.());
        return;
      }
    }
    return super._onCommand(command, callback);
  }

  _proxyCommandAllowed(command: string, option: string): boolean {
    const self = this as any;
    if (option === 'useXClient') {
      return (
        !self._xClient.has('ADDR') &&
        this._server.hooks.xclientAllowed(self._originalRemoteAddress) &&
        self._isSupported(command)
      );
    }
    return super._proxyCommandAllowed(command, option);
  }

  send(code: number, data: unknown, context?: unknown): unknown {
    if (typeof data === 'string' && ENHANCED.test(data)) return super.send(code, data, false);
    return super.send(code, data, context);
  }
}

const ID_DIGITS = '0123456789abcdefghijklmnopqrstuv'; // BigInt#toString(32), as the library formats its ids

/** A session id in smtp-server's format (16 base-32 digits = 80 random bits) from the pooled CSPRNG bytes. */
export function sessionId(): string {
  return randomDigits(16, ID_DIGITS);
}

export class GuardedServer extends SMTPServer {
  hooks!: GuardHooks;

  constructor(options: SMTPServerOptions, hooks: GuardHooks) {
    super(options);
    this.hooks = hooks;
  }

  override connect(socket: net.Socket, socketOptions?: unknown): void {
    const self = this as any;
    const connection = new Connection(this, socket, socketOptions) as any;
    self.connections.add(connection);
    connection.on('error', (err: Error) => self._onError(err));
    connection.on('connect', (data: unknown) => self._onClientConnect(data));
    connection.init();
  }

  override _expectsProxyHeader(socket: net.Socket): boolean {
    return this.hooks.expectsProxy(socket.remoteAddress);
  }

  /** Without a PROXY header to read: the library's own branch, with a pooled session id (see the top). */
  override _handleProxy(socket: net.Socket, callback: Parameters<SMTPServer['_handleProxy']>[1]): void {
    if (this._expectsProxyHeader(socket)) return super._handleProxy(socket, callback);
    const ignored = (this as any).options.ignoredHosts as string[] | undefined;
    const socketOptions = { id: sessionId(), ignore: !!ignored && ignored.includes(socket.remoteAddress as string) };
    setImmediate(() => callback(null, socketOptions as Parameters<typeof callback>[1]));
  }

  /** Open sessions (for the drain sweep). */
  views(): GuardedConnection[] {
    return [...(this as any).connections].map((c: Connection) => c.view());
  }
}

/**
 * The smtp-server release the overrides above were written against; package.json pins exactly this version (no
 * caret), so an upgrade is a deliberate edit that re-runs the guard tests.
 */
export const SMTP_SERVER_PINNED = '3.21.6';

/** The library internals this file overrides or calls, per prototype. */
export const SMTP_SERVER_INTERNALS = {
  SMTPConnection: [
    'init',
    '_setListeners',
    'connectionReady',
    '_createParser',
    '_onCommand',
    '_proxyCommandAllowed',
    'send',
    'close',
    '_isSupported',
  ],
  SMTPServer: ['connect', '_expectsProxyHeader', '_handleProxy', '_onError', '_onClientConnect'],
  SMTPStream: ['_write', 'startDataMode'],
} as const;

type Prototypes = { readonly [K in keyof typeof SMTP_SERVER_INTERNALS]: object };

const PROTOTYPES: Prototypes = {
  SMTPConnection: (SMTPConnection as any).prototype,
  SMTPServer: (SMTPServer as any).prototype,
  SMTPStream: (SMTPStream as any).prototype,
};

/** The installed smtp-server version, for the start-up error. */
export function installedSmtpServerVersion(): string {
  try {
    return (createRequire(import.meta.url)('smtp-server/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `Class.method` for every internal that is not a function on the given prototypes. */
export function missingSmtpServerInternals(protos: Prototypes = PROTOTYPES): string[] {
  const missing: string[] = [];
  for (const [cls, methods] of Object.entries(SMTP_SERVER_INTERNALS) as [keyof Prototypes, readonly string[]][]) {
    const proto = protos[cls] as Record<string, unknown>;
    for (const m of methods) if (typeof proto[m] !== 'function') missing.push(`${cls}.prototype.${m}`);
  }
  return missing;
}

/**
 * Fail at start-up if an smtp-server internal this file relies on is gone: ingress refuses to start rather than
 * run without its smuggling and relay guards (an overridden method that no longer exists is never called).
 */
export function assertSmtpServerInternals(
  protos: Prototypes = PROTOTYPES,
  version = installedSmtpServerVersion(),
): void {
  const missing = missingSmtpServerInternals(protos);
  if (missing.length > 0) {
    throw new Error(
      `smtp-server ${version} lacks ${missing.join(', ')} (ingress guards are written for smtp-server ` +
        `${SMTP_SERVER_PINNED}): ingress cannot install its smuggling and relay guards. Pin smtp-server to ` +
        `${SMTP_SERVER_PINNED} in services/ingress-smtp/package.json or port services/ingress-smtp/src/smtp-guard.ts.`,
    );
  }
}
