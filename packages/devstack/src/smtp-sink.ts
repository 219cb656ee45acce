// One file (~355 lines): one test server (scripted replies, rejections, TLS, recording) behind one function;
// most of it is the option and handle types.
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { testTlsCert } from './tls.js';

export interface SinkMessage {
  /** Envelope sender ('' for the null sender `<>`). */
  mailFrom: string;
  /** MAIL FROM parameters, upper-case keys (e.g. { BODY: '8BITMIME', SMTPUTF8: true }), or false. */
  mailFromArgs: Record<string, string | true> | false;
  rcptTo: string[];
  /** The message exactly as received after DATA (dot-unstuffed, without the terminating `.CRLF`). */
  data: Buffer;
  receivedAt: Date;
  /** True if the transaction ran over TLS (STARTTLS). */
  secure: boolean;
  remoteAddress: string;
  /** EHLO/HELO name. */
  heloName: string;
  /** AUTH username, if the client authenticated. */
  user?: string;
  /** Local address the client connected to (useful with several sinks on 127.0.0.x). */
  localAddress: string;
}

export type SinkStage = 'connect' | 'mail' | 'rcpt' | 'data';

export interface SinkReply {
  /** Where to answer: 'connect' (greeting, then close), 'mail' (MAIL FROM), 'rcpt' (RCPT TO), 'data' (after DATA). */
  stage: SinkStage;
  /** 4xx or 5xx. */
  code: number;
  message?: string;
  /**
   * Only for this recipient (case-insensitive). At stage 'data' the whole message is refused if any of its
   * recipients matches (plain SMTP has one DATA reply per message).
   */
  rcpt?: string;
  /** Only for this envelope sender (stages mail/rcpt/data). */
  mailFrom?: string;
  /** Apply this many times, then drop the rule (e.g. `times: 1` = fail the first attempt only). Default: forever. */
  times?: number;
}

export interface SinkRejection {
  stage: SinkStage;
  code: number;
  message: string;
  mailFrom?: string;
  rcpt?: string;
  rcptTo?: string[];
  at: Date;
}

export interface StartSmtpSinkOptions {
  /** Listen address, default '127.0.0.1' (any 127.x.y.z works on Linux). */
  host?: string;
  /** Default: a free port (bind to 0). */
  port?: number;
  /** Offer STARTTLS with the self-signed testTlsCert(). Default false. */
  tls?: boolean;
  /** Require AUTH before MAIL FROM. Default false (AUTH is still offered and any credentials are accepted). */
  authRequired?: boolean;
  /** If set, AUTH only accepts these username → password pairs. */
  users?: Record<string, string>;
  /** Greeting text after `220 <hostname> `. */
  banner?: string;
  /** Server name used in greeting/EHLO, default 'sink.test'. */
  name?: string;
  /** See Sink.beforeDataReply(). */
  beforeDataReply?: BeforeDataReply;
}

/**
 * Runs after a message was accepted and recorded, before its 250 is written: the reply is held until the returned
 * promise settles (e.g. kill Redis or the client process "right at the 250"). A rejection still answers 250.
 */
export type BeforeDataReply = (m: SinkMessage) => Promise<unknown> | unknown;

export interface Sink {
  host: string;
  port: number;
  /** Accepted messages in arrival order. */
  readonly messages: SinkMessage[];
  /** Every 4xx/5xx the sink gave because of setReply(). */
  readonly rejections: SinkRejection[];
  /** Connections accepted since start (or clear()). */
  readonly connections: number;
  /** Connections currently open. */
  readonly activeConnections: number;
  /** Resolves with all messages once at least `count` were accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** Resolves with the first accepted message matching `predicate` (including ones already received). */
  waitFor(predicate: (m: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  /** Forgets messages, rejections and the connection count (not the reply rules). */
  clear(): void;
  setReply(reply: SinkReply): void;
  clearReplies(): void;
  /** Hold every DATA 250 behind `hook` (undefined: answer at once again). */
  beforeDataReply(hook: BeforeDataReply | undefined): void;
  /** Closes the listener (new connections are refused: ECONNREFUSED); open sessions go on unless dropConnections. */
  pause(opts?: { dropConnections?: boolean }): Promise<void>;
  /** Listens again on the same host and port. */
  resume(): Promise<void>;
  readonly paused: boolean;
  /** Closes the listener and every open connection. Idempotent. */
  close(): Promise<void>;
  /** Alias of close(). */
  stop(): Promise<void>;
  /** The underlying smtp-server instance. */
  server: SMTPServer;
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

const lc = (s: string | undefined): string | undefined => s?.toLowerCase();

/** An SMTP server (smtp-server) on loopback that records every accepted message. */
export async function startSmtpSink(opts: StartSmtpSinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.1';
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const messages: SinkMessage[] = [];
  const rejections: SinkRejection[] = [];
  let replies: SinkReply[] = [];
  let holdHook: BeforeDataReply | undefined = opts.beforeDataReply;
  let connections = 0;
  let active = 0;
  let paused = false;
  let closed = false;

  const findReply = (stage: SinkStage, mailFrom: string | undefined, rcpts: string[]): SinkReply | undefined => {
    const candidates = replies.filter(
      (r) =>
        r.stage === stage &&
        (r.mailFrom === undefined || lc(r.mailFrom) === lc(mailFrom)) &&
        (r.rcpt === undefined || rcpts.some((x) => lc(x) === lc(r.rcpt))),
    );
    // recipient-specific rules win over global ones
    const hit = candidates.find((r) => r.rcpt !== undefined) ?? candidates[0];
    if (hit && hit.times !== undefined) {
      hit.times -= 1;
      if (hit.times <= 0) replies = replies.filter((r) => r !== hit);
    }
    return hit;
  };

  const reject = (
    hit: SinkReply,
    info: Omit<SinkRejection, 'code' | 'message' | 'at' | 'stage'>,
  ): Error & { responseCode: number } => {
    const message = hit.message ?? (hit.code >= 500 ? 'Rejected by test sink' : 'Try again later (test sink)');
    rejections.push({ stage: hit.stage, code: hit.code, message, at: new Date(), ...info });
    events.emit('change');
    return smtpError(hit.code, message);
  };

  const tlsOpts = opts.tls ? testTlsCert() : undefined;
  const server = new SMTPServer({
    name: opts.name ?? 'sink.test',
    banner: opts.banner,
    logger: false,
    secure: false,
    ...(tlsOpts ? { key: tlsOpts.key, cert: tlsOpts.cert } : {}),
    hideSTARTTLS: !opts.tls,
    disabledCommands: opts.tls ? [] : ['STARTTLS'],
    authOptional: !opts.authRequired,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    hideSize: true,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    disableReverseLookup: true,
    closeTimeout: 300,
    onConnect(session, cb) {
      connections += 1;
      active += 1;
      events.emit('change');
      const hit = findReply('connect', undefined, []);
      if (hit) return cb(reject(hit, {}));
      cb();
    },
    onClose() {
      active = Math.max(0, active - 1);
      events.emit('change');
    },
    onAuth(auth, _session, cb) {
      const user = auth.username ?? '';
      if (opts.users && opts.users[user] !== auth.password) return cb(smtpError(535, 'Invalid credentials'));
      cb(null, { user });
    },
    onMailFrom(address: SMTPServerAddress, _session, cb) {
      const hit = findReply('mail', address.address, []);
      if (hit) return cb(reject(hit, { mailFrom: address.address }));
      cb();
    },
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb) {
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const hit = findReply('rcpt', from, [address.address]);
      if (hit) return cb(reject(hit, { mailFrom: from, rcpt: address.address }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => cb(err));
      stream.on('end', () => {
        const env = session.envelope;
        const mailFrom = env.mailFrom ? env.mailFrom.address : '';
        const rcptTo = env.rcptTo.map((r) => r.address);
        const hit = findReply('data', mailFrom, rcptTo);
        if (hit) return cb(reject(hit, { mailFrom, rcptTo }));
        const msg: SinkMessage = {
          mailFrom,
          mailFromArgs: env.mailFrom ? env.mailFrom.args : false,
          rcptTo,
          data: Buffer.concat(chunks),
          receivedAt: new Date(),
          secure: session.secure,
          remoteAddress: session.remoteAddress,
          heloName: session.hostNameAppearsAs,
          localAddress: session.localAddress,
          ...(session.user !== undefined ? { user: String(session.user) } : {}),
        };
        messages.push(msg);
        events.emit('change');
        const reply = `Queued as sink-${messages.length}`;
        const hook = holdHook;
        if (!hook) return cb(null, reply);
        Promise.resolve()
          .then(() => hook(msg))
          .catch(() => undefined)
          .then(() => cb(null, reply));
      });
    },
  });
  server.on('error', () => {
    /* client-side errors (resets, TLS failures) are not the test's concern */
  });

  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const onErr = (err: Error): void => reject(err);
      server.server.once('error', onErr);
      server.server.listen(port, host, () => {
        server.server.off('error', onErr);
        resolve((server.server.address() as AddressInfo).port);
      });
    });

  const port = await listen(opts.port ?? 0);

  const waitFor = ((arg: number | ((m: SinkMessage) => boolean), timeoutMs = 5000): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (typeof arg === 'number') {
          if (messages.length >= arg) {
            finish();
            resolve([...messages]);
            return true;
          }
        } else {
          const m = messages.find(arg);
          if (m) {
            finish();
            resolve(m);
            return true;
          }
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        const what = typeof arg === 'number' ? `${arg} message(s)` : 'a matching message';
        reject(
          new Error(
            `smtp sink ${host}:${port}: timed out after ${timeoutMs} ms waiting for ${what}; ` +
              `have ${messages.length} message(s), ${rejections.length} rejection(s), ${connections} connection(s)`,
          ),
        );
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        events.off('change', check);
      };
      if (!check()) events.on('change', check);
    })) as Sink['waitFor'];

  const dropAll = (): void => {
    for (const c of server.connections) {
      try {
        c.close();
      } catch {
        /* already closing */
      }
    }
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    dropAll();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  const sink: Sink = {
    host,
    port,
    messages,
    rejections,
    get connections() {
      return connections;
    },
    get activeConnections() {
      return active;
    },
    get paused() {
      return paused;
    },
    waitFor,
    clear() {
      messages.length = 0;
      rejections.length = 0;
      connections = 0;
    },
    setReply(reply) {
      if (!(reply.code >= 400 && reply.code <= 599))
        throw new Error(`setReply: code must be 4xx/5xx, got ${reply.code}`);
      replies.push({ ...reply });
    },
    clearReplies() {
      replies = [];
    },
    beforeDataReply(hook) {
      holdHook = hook;
    },
    async pause(popts) {
      if (paused || closed) return;
      paused = true;
      server.server.close();
      if (popts?.dropConnections) dropAll();
    },
    async resume() {
      if (!paused || closed) return;
      await listen(port);
      paused = false;
    },
    close,
    stop: close,
    server,
  };
  return sink;
}
