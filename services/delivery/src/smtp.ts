// One file (~380 lines): the SMTP client connection and the nodemailer internals it hooks (NODEMAILER_HOOK, checked
// at start-up) must change together when nodemailer does; the rest is the failure type and replies it produces.
import { isAscii } from 'node:buffer';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import type { TlsMode } from './config.js';
import type { Target } from './mx.js';

export interface SmtpTimeouts {
  readonly connectMs: number;
  readonly greetingMs: number;
  readonly commandMs: number;
  readonly dataMs: number;
}

export interface ConnectionPolicy {
  readonly tls: TlsMode;
  readonly tlsVerify: boolean;
  readonly auth?: { readonly user: string; readonly pass: string } | undefined;
}

/**
 * A failure that concerns the whole transaction (not one recipient). `reply` is the server's exact reply when
 * there was one, else our own text in reply form ("451 4.4.1 …") so a DSN can quote it.
 */
export class SmtpFailure extends Error {
  override readonly name = 'SmtpFailure';
  constructor(
    /** Where it happened: connect (TCP, greeting, EHLO, STARTTLS, AUTH), mail, data, size. */
    readonly phase: 'connect' | 'mail' | 'data' | 'size',
    readonly reply: string,
    /** True when retrying later may work (4xx, network); false for 5xx. */
    readonly temporary: boolean,
    /** Trying the next MX / smarthost makes sense (connection-level trouble). */
    readonly tryNext: boolean,
    /**
     * The message may have been accepted: the connection dropped or timed out after the final dot went out without a
     * final reply (RFC 1047). The pending mark is kept so a retry does not resend before it expires.
     */
    readonly outcomeUnknown = false,
  ) {
    super(reply);
  }
}

export interface TransactionResult {
  /** Recipients the server accepted with RCPT and then the message with the final DATA reply. */
  readonly delivered: string[];
  /** Per-recipient refusals (RCPT reply), and for accepted recipients a failed DATA reply. */
  readonly refused: { rcpt: string; reply: string; temporary: boolean }[];
  /** The final DATA reply when the message was accepted. */
  readonly dataReply?: string;
}

const oneLine = (s: string) =>
  s
    .replace(/\r?\n\d{3}[- ]?/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
const codeOf = (reply: string | undefined): number => Number(/^(\d{3})/.exec(reply ?? '')?.[1] ?? 0);
const isTemp = (reply: string) => codeOf(reply) < 500;

type NmError = Error & {
  code?: string;
  command?: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
};

/** Our own reply text for failures that have no server reply (network, timeouts, TLS policy). */
function syntheticReply(err: NmError, target: Target, policy: ConnectionPolicy): string {
  switch (err.code) {
    case 'ETLS':
      return policy.tls === 'required'
        ? `451 4.7.4 TLS required but STARTTLS failed or not offered by ${target.host}[${target.address}]`
        : `451 4.7.5 STARTTLS failed with ${target.host}[${target.address}]`;
    case 'ETIMEDOUT':
      return `451 4.4.2 timeout talking to ${target.host}[${target.address}]: ${err.message}`;
    default:
      return `451 4.4.1 connection to ${target.host}[${target.address}]:${target.port} failed: ${err.code ?? ''} ${err.message}`.trim();
  }
}

/**
 * nodemailer has no event for "DATA accepted, message bytes going out", so SmtpClientConnection wraps this
 * private method, which nodemailer 7 calls exactly then. A release without it would silently lose the signal (a
 * drop after DATA would then be retried on the next host: a possible duplicate), so delivery refuses to start.
 */
export const NODEMAILER_HOOK = '_createSendStream';
/** The nodemailer release the hook was written against. */
export const NODEMAILER_WRITTEN_FOR = '7.0.13';

function installedNodemailerVersion(): string {
  try {
    return (createRequire(import.meta.url)('nodemailer/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Fail at start-up (not per connection) if nodemailer's SMTPConnection lost the method delivery hooks. */
export function assertNodemailerInternals(
  proto: object = SMTPConnection.prototype,
  version = installedNodemailerVersion(),
): void {
  if (typeof (proto as Record<string, unknown>)[NODEMAILER_HOOK] !== 'function') {
    throw new Error(
      `nodemailer ${version} lacks SMTPConnection.prototype.${NODEMAILER_HOOK} (delivery hooks it to know when ` +
        `DATA starts; written for nodemailer ${NODEMAILER_WRITTEN_FOR}): pin nodemailer to ` +
        `${NODEMAILER_WRITTEN_FOR} in services/delivery/package.json or port services/delivery/src/smtp.ts.`,
    );
  }
}

/**
 * One SMTP client connection (nodemailer's SMTPConnection): EHLO with our name, STARTTLS per policy, AUTH when
 * configured, then any number of transactions. nodemailer pipelines the RCPTs when the server offers PIPELINING,
 * sends SIZE when offered (and refuses locally when the message is larger than the advertised limit), and keeps
 * per-recipient RCPT results.
 */
export class SmtpClientConnection {
  messages = 0;
  private alive = true;
  private failPending: ((e: NmError) => void) | null = null;
  /** Set when an idle connection is closed by the server or the network. */
  onDead: (() => void) | null = null;
  /** Called when the server said 354; a promise returned holds the final dot back until it resolves. */
  private onDataPhase: (() => Promise<void> | undefined) | null = null;
  private ended: Promise<void> | null = null;

  private constructor(
    private readonly conn: SMTPConnection,
    readonly target: Target,
    readonly policy: ConnectionPolicy,
    private readonly timeouts: SmtpTimeouts,
  ) {
    const dead = (err: NmError) => {
      if (!this.alive) return;
      this.alive = false;
      const f = this.failPending;
      this.failPending = null;
      f?.(err);
      this.onDead?.();
    };
    conn.on('error', (err: NmError) => dead(err));
    // Knowing when DATA starts matters: a drop before it may go to the next host, after it may not. The hook is
    // checked at start-up (assertNodemailerInternals), so it is there. It also holds the final dot back until the
    // transaction's gate (the pending mark) resolved: nodemailer writes the message into the stream it creates here
    // and then ends it, and the end is what writes the dot.
    const inner = conn as unknown as { _createSendStream: (cb: unknown) => Writable };
    const orig = inner._createSendStream;
    inner._createSendStream = (cb: unknown) => {
      const gate = this.onDataPhase?.();
      const stream = orig.call(conn, cb);
      if (gate) {
        const end = stream.end.bind(stream) as (...args: unknown[]) => Writable;
        stream.end = ((...args: unknown[]) => {
          // Refused, or the transaction ended meanwhile (timeout, connection lost): no dot goes out.
          gate.then(
            () => void (this.alive && end(...args)),
            () => undefined,
          );
          return stream;
        }) as Writable['end'];
      }
      return stream;
    };
    conn.on('end', () => dead(Object.assign(new Error('connection closed'), { code: 'ECONNECTION' })));
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get secure(): boolean {
    return (this.conn as unknown as { secure: boolean }).secure;
  }

  static open(
    target: Target,
    policy: ConnectionPolicy,
    ehloName: string,
    timeouts: SmtpTimeouts,
  ): Promise<SmtpClientConnection> {
    const conn = new SMTPConnection({
      host: target.address,
      port: target.port,
      name: ehloName,
      secure: false,
      lmtp: false,
      ignoreTLS: policy.tls === 'none',
      requireTLS: policy.tls === 'required',
      // Opportunistic: a server that offers STARTTLS but refuses it gets the mail in clear (RFC 3207 practice).
      opportunisticTLS: policy.tls === 'opportunistic',
      servername: target.host,
      tls: { rejectUnauthorized: policy.tlsVerify, servername: target.host },
      connectionTimeout: timeouts.connectMs,
      greetingTimeout: timeouts.greetingMs,
      socketTimeout: timeouts.commandMs,
      // Loopback / private addresses are legitimate for internal smarthosts.
      allowInternalNetworkInterfaces: true,
      logger: false,
      debug: false,
    } as SMTPConnection.Options);
    const c = new SmtpClientConnection(conn, target, policy, timeouts);
    return new Promise<SmtpClientConnection>((resolve, reject) => {
      const fail = (err: NmError) => {
        conn.close();
        // TLS policy failures are always temporary and in our words (the server's "502 unknown command" to
        // STARTTLS is not a verdict on the message); greeting/EHLO/AUTH replies are quoted as given.
        const reply =
          err.code === 'ETLS'
            ? `${syntheticReply(err, target, policy)}${err.response ? ` (server said: ${oneLine(err.response)})` : ''}`
            : err.response && codeOf(err.response) >= 400
              ? oneLine(err.response)
              : syntheticReply(err, target, policy);
        reject(new SmtpFailure('connect', reply, err.code === 'ETLS' || !err.response || isTemp(err.response), true));
      };
      c.failPending = fail;
      conn.connect(() => {
        // Commands and the final "." are small writes: without TCP_NODELAY, Nagle + delayed ACK stall each
        // transaction by ~40 ms on a reused connection.
        (conn as unknown as { _socket?: { setNoDelay?: (on: boolean) => void } })._socket?.setNoDelay?.(true);
        if (policy.tls === 'required' && !c.secure)
          return fail(Object.assign(new Error('not secure'), { code: 'ETLS' }));
        const auth = policy.auth;
        const allowsAuth = (conn as unknown as { allowsAuth?: boolean }).allowsAuth;
        if (!auth || !allowsAuth) {
          c.failPending = null;
          return resolve(c);
        }
        conn.login(
          { credentials: { user: auth.user, pass: auth.pass } } as unknown as SMTPConnection.Credentials,
          (err) => {
            if (err) {
              // Wrong credentials are a configuration error: keep the mail (temporary) and let the operator fix it.
              const e = err as NmError;
              return fail(
                Object.assign(e, {
                  response: e.response ? `454 4.7.0 AUTH failed: ${oneLine(e.response)}` : undefined,
                }),
              );
            }
            c.failPending = null;
            resolve(c);
          },
        );
      });
    });
  }

  /**
   * One transaction: MAIL, RCPT… (pipelined), DATA. Per-recipient results; throws SmtpFailure for whole-transaction
   * failures. `beforeDot` (delivery's pending mark) starts once the server said 354 and runs while the body goes
   * out; the final dot is sent only after it resolved. If it rejects, the connection is closed without the dot (the
   * server discards the transaction: nothing was sent) and `send` rejects with its error.
   */
  send(from: string, to: readonly string[], raw: Buffer, beforeDot?: () => Promise<void>): Promise<TransactionResult> {
    if (!this.alive) return Promise.reject(new SmtpFailure('connect', '451 4.4.1 connection lost', true, true));
    this.messages++;
    // Native scan (was a JS callback per byte: ~3 % of delivery's CPU at 10 KiB in a profile).
    const eightBit = !isAscii(raw);
    return new Promise<TransactionResult>((resolve, reject) => {
      let done = false;
      let dataStarted = false;
      /** The final dot was (or is about to be) written: from here on the server may have the message. */
      let dotSent = false;
      let beforeDotError: { err: unknown } | undefined;
      this.onDataPhase = () => {
        dataStarted = true;
        if (!beforeDot) {
          dotSent = true;
          return undefined;
        }
        // Runs while nodemailer writes the body; the dot waits for it (see the constructor's hook).
        const gate = beforeDot();
        gate.then(
          () => (dotSent = true),
          (err: unknown) => {
            beforeDotError = { err };
            finish(new SmtpFailure('data', '451 4.3.0 the attempt could not be recorded', true, false, false));
          },
        );
        return gate;
      };
      const timer = setTimeout(() => {
        finish(
          new SmtpFailure(
            'data',
            `451 4.4.2 timeout after ${this.timeouts.dataMs} ms sending to ${this.target.host}`,
            true,
            false,
            dotSent,
          ),
        );
        void this.close(true);
      }, this.timeouts.dataMs);
      const finish = (r: TransactionResult | SmtpFailure) => {
        if (done) return;
        if (beforeDotError && r instanceof SmtpFailure) {
          // No dot went out: the connection is in the middle of DATA and cannot be used again.
          done = true;
          clearTimeout(timer);
          this.failPending = null;
          void this.close(true);
          reject(beforeDotError.err);
          return;
        }
        done = true;
        clearTimeout(timer);
        this.failPending = null;
        if (r instanceof SmtpFailure) reject(r);
        else resolve(r);
      };
      this.failPending = (err) => {
        // The connection died mid-transaction. Before DATA: another host may take it; after the final dot: the
        // outcome is unknown (the server may have the message) — temporary, and the markers keep a retry from
        // duplicating what we know was accepted.
        finish(
          new SmtpFailure(
            dataStarted ? 'data' : 'connect',
            syntheticReply(err, this.target, this.policy),
            true,
            !dataStarted,
            dotSent,
          ),
        );
      };
      const envelope = { from, to: [...to], size: raw.length, use8BitMime: eightBit } as SMTPConnection.Envelope;
      this.conn.send(envelope, raw, (err, info) => {
        if (err) {
          const e = err as NmError;
          const reply = e.response ? oneLine(e.response) : '';
          if (e.code === 'EENVELOPE' && e.command === 'RCPT TO') {
            // Every recipient refused: per-recipient replies, the connection stays usable (after RSET).
            const refused = (e as unknown as { rejectedErrors?: NmError[] }).rejectedErrors ?? [];
            return finish({
              delivered: [],
              refused: refused.map((r) => ({
                rcpt: r.recipient ?? '',
                reply: oneLine(r.response ?? '550 5.1.1 refused'),
                temporary: isTemp(r.response ?? '550'),
              })),
            });
          }
          if (e.code === 'EENVELOPE' && e.command === 'MAIL FROM') {
            return finish(new SmtpFailure('mail', reply || '451 4.3.0 MAIL FROM failed', isTemp(reply), isTemp(reply)));
          }
          if (e.code === 'EMESSAGE' && e.command === 'MAIL FROM') {
            return finish(
              new SmtpFailure(
                'size',
                `552 5.3.4 message size ${raw.length} exceeds the limit of ${this.target.host}`,
                false,
                false,
              ),
            );
          }
          if (e.code === 'EENVELOPE' && e.command === 'API') {
            return finish(new SmtpFailure('mail', `553 5.1.3 invalid envelope address: ${e.message}`, false, false));
          }
          if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.command === 'DATA') {
            return finish(new SmtpFailure('data', reply || '451 4.3.0 DATA failed', isTemp(reply || '451'), false));
          }
          return finish(
            new SmtpFailure(
              dataStarted ? 'data' : 'connect',
              reply || syntheticReply(e, this.target, this.policy),
              reply ? isTemp(reply) : true,
              !dataStarted,
              dotSent && !reply,
            ),
          );
        }
        const accepted = (info.accepted ?? []).map(String);
        const rejectedErrors = ((info as unknown as { rejectedErrors?: NmError[] }).rejectedErrors ?? []) as NmError[];
        finish({
          delivered: accepted,
          refused: rejectedErrors.map((r) => ({
            rcpt: r.recipient ?? '',
            reply: oneLine(r.response ?? '550 5.1.1 refused'),
            temporary: isTemp(r.response ?? '550'),
          })),
          dataReply: oneLine(String(info.response ?? '250 OK')),
        });
      });
    });
  }

  /** RSET after a failed transaction so the connection can be reused; false when it cannot. */
  reset(): Promise<boolean> {
    if (!this.alive) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), this.timeouts.commandMs);
      this.failPending = () => {
        clearTimeout(t);
        resolve(false);
      };
      this.conn.reset((err) => {
        clearTimeout(t);
        this.failPending = null;
        resolve(!err);
      });
    });
  }

  /** QUIT (or drop, when hard) and resolve once the socket is closed, so a freed slot means a closed connection. */
  close(hard = false): Promise<void> {
    this.alive = false;
    if (!this.ended) {
      this.ended = new Promise<void>((resolve) => {
        if ((this.conn as unknown as { _destroyed?: boolean })._destroyed) return resolve();
        this.conn.once('end', () => resolve());
        // QUIT waits for the reply; do not let a silent server keep the socket (or the slot) forever.
        setTimeout(() => {
          this.conn.close();
          resolve();
        }, 1000).unref();
      });
    }
    try {
      if (hard) this.conn.close();
      else this.conn.quit();
    } catch {
      /* already closed */
    }
    return this.ended;
  }
}
