import { performance } from 'node:perf_hooks';
import type { SecureContextOptions } from 'node:tls';
import {
  RECORD_HEADERS,
  TOPICS,
  forward,
  newEnvelope,
  newMessageId,
  newRecord,
  trackingEvent,
  type PipelineMessage,
} from '@mailgate/contracts';
import { eventRecord, type OutRecord } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';
import { injectTraceHeaders, traceIdOf, traceparentOf } from '@mailgate/telemetry';
import {
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Context,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type {
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import { commandArgument, parsePath } from './address.js';
import { networkMatcher, normalizeIp } from './cidr.js';
import type { IngressConfig, ListenerKind } from './config.js';
import { listedReplyText, type ConnectFilter, type ConnectFilterResult } from './connect-filter.js';
import { ingressHeaders, stripHeaders } from './headers.js';
import { quarantinedEvent, type MailFromAuth, type SenderAuthPhase } from './sender-auth-phase.js';
import { LineEndingGuard } from './line-endings.js';
import type { ListPhase } from './list-phase.js';
import type { RecipientPhase } from './recipient-phase.js';
import { NulGuard } from './nul-bytes.js';
import { WindowCounter } from './rate-limit.js';
import { REPLIES, replyText } from './replies.js';
import { buildRelayPolicy, decideRecipient, directionOf, parseRecipient } from './relay.js';
import {
  BARE_CR,
  GuardedServer,
  assertSmtpServerInternals,
  type CommandRefusal,
  type GuardHooks,
} from './smtp-guard.js';
import type { UserStore } from './users.js';
import type { RefusalFacts, RefusalRecorder } from './refusals.js';
import { messageFacts } from './message-facts.js';

/**
 * The SMTP front door as one composable object: listeners, per-session policy and the durable accept.
 * service.ts wires it to the runtime (config, Kafka producer, Redis, health, shutdown); tests and the benchmark
 * can build it directly.
 */

export interface IngressDeps {
  readonly config: IngressConfig;
  /** Our host name: greeting, Received "by". */
  readonly hostname: string;
  /** Instance (pod) name for envelope and events. */
  readonly instance: string;
  /** Product name in the Received header. */
  readonly product?: string;
  readonly log: Logger;
  readonly tracer: Tracer;
  readonly meter?: Meter | undefined;
  /** Durable producer (acks=-1): resolves only once the broker acknowledged. */
  readonly producer: { send(records: OutRecord[]): Promise<void> };
  /** Redis for the per-IP message rate and AUTH failure limits (null: those limits are off). */
  readonly redis?: Redis | null | undefined;
  readonly connectFilter?: ConnectFilter | null | undefined;
  /** Recipient validation at RCPT (ingress.recipients); null = any local part of an accepted domain. */
  readonly recipientPhase?: RecipientPhase | null | undefined;
  /** Live sender/IP lists (ingress.lists). */
  readonly listPhase?: ListPhase | null | undefined;
  readonly users: UserStore;
  /** PEM key/cert for STARTTLS (from ingress.tls files); null = no STARTTLS. */
  readonly tls?: { key: string | Buffer; cert: string | Buffer } | null | undefined;
  /** SPF at MAIL FROM, DKIM/ARC/DMARC at end of DATA (sender-auth-phase.ts); null = not checked. */
  readonly senderAuth?: SenderAuthPhase | null | undefined;
  /** Records SMTP-time refusals as `refused` tracking events (best effort; never blocks a reply). */
  readonly refusals?: RefusalRecorder | null | undefined;
}

export interface ListenerAddress {
  readonly host: string;
  readonly port: number;
}

export interface IngressStats {
  accepted: number;
  tempfailed: number;
  /** end of DATA → 250, ms, most recent samples (bounded). */
  readonly acceptLatencyMs: number[];
}

export interface Ingress {
  listen(): Promise<Partial<Record<ListenerKind, ListenerAddress>>>;
  readonly addresses: Partial<Record<ListenerKind, ListenerAddress>>;
  /** Stop accepting connections; idle sessions get 421 now, sessions in DATA finish first. */
  stopIntake(): void;
  /** Resolves when every session is gone (or the drain timeout cut the rest with 421). */
  drained(): Promise<void>;
  /** Replace the STARTTLS certificate (file reload). */
  updateTls(tls: { key: string | Buffer; cert: string | Buffer }): void;
  readonly openSessions: number;
  readonly stats: IngressStats;
  /** Time in the sender-auth checks (null when off). */
  readonly senderAuthStats: SenderAuthPhase['stats'] | null;
}

interface TxState {
  readonly span: Span;
  readonly ctx: Context;
  readonly mailFrom: string;
  readonly rcpts: string[];
  readonly inbound: boolean[];
  readonly keys: Set<string>;
  auth?: MailFromAuth;
}

interface ConnState {
  readonly id: string;
  readonly listener: ListenerKind;
  readonly span: Span;
  readonly ctx: Context;
  ipCounted?: string;
  expired: boolean;
  timer?: NodeJS.Timeout;
  filteredIp?: string;
  listed: ConnectFilterResult | null;
  /** The client matched an ip-allow list entry at connect: the dnsbl-check stage skips its message too. */
  allowListed?: boolean;
  lastLine: string;
  unknown: number;
  /** Unknown recipients so far (harvest tarpit). */
  unknownRcpts: number;
  tx: TxState | null;
}

/** An error smtp-server turns into a reply: `<code> <text>`. */
function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

const MAX_LATENCY_SAMPLES = 200_000;

/** RFC 4954 §4: an AUTH command line (with its initial response) and SASL response lines may be this long. */
export const AUTH_LINE_OCTETS = 12_288;

export function createIngress(deps: IngressDeps): Ingress {
  assertSmtpServerInternals();
  const { config: cfg, log } = deps;
  const policy = buildRelayPolicy(cfg.acceptedDomains);
  const trustedNets = networkMatcher(cfg.trustedNetworks);
  const proxyNets = networkMatcher(cfg.proxy.trusted);
  const xclientNets = networkMatcher(cfg.xclient.trusted);
  const limits = cfg.limits;
  const msgRate = deps.redis
    ? new WindowCounter(deps.redis, 'ingress:msg', limits.messageRate.max, limits.messageRate.windowSeconds)
    : null;
  const authFailures = deps.redis
    ? new WindowCounter(deps.redis, 'ingress:authfail', cfg.auth.failures.max, cfg.auth.failures.windowSeconds)
    : null;
  const filter = deps.connectFilter ?? null;
  const hasExceptions = !!filter?.isException && (filter.exceptions?.length ?? 1) > 0;

  const states = new Map<string, ConnState>();
  const perIp = new Map<string, number>();
  const stats: IngressStats = { accepted: 0, tempfailed: 0, acceptLatencyMs: [] };
  let draining = false;

  const m = deps.meter;
  const connCounter = m?.createCounter('mailgate_ingress_connections', { description: 'SMTP connections accepted' });
  const refusedCounter = m?.createCounter('mailgate_ingress_refused', { description: 'SMTP refusals by reason' });
  const acceptedCounter = m?.createCounter('mailgate_ingress_messages_accepted', {
    description: 'messages queued (250)',
  });
  const acceptHist = m?.createHistogram('mailgate_ingress_accept_duration_seconds', {
    description: 'end of DATA to 250 (durable produce), seconds',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15] },
  });
  type Why = Omit<RefusalFacts, 'reason' | 'listener'>;
  const refused = (reason: string, listener: ListenerKind, why?: Why) => {
    refusedCounter?.add(1, { reason, listener });
    if (why) deps.refusals?.record({ reason, listener, ...why });
  };
  /** What a `refused` tracking event says about a refusal (the transaction's sender and recipients so far). */
  const why = (
    st: ConnState | undefined,
    ip: string,
    phase: Why['phase'],
    reply: Error & { responseCode: number },
    o: { rcptTo?: readonly string[]; session?: SMTPServerSession } = {},
  ): Why => ({
    clientIp: ip,
    phase,
    reply: `${reply.responseCode} ${reply.message}`,
    mailFrom: st?.tx?.mailFrom,
    rcptTo: o.rcptTo ?? st?.tx?.rcpts,
    traceId: st ? traceIdOf(st.tx?.span ?? st.span) : undefined,
    helo: o.session?.hostNameAppearsAs ? String(o.session.hostNameAppearsAs) : undefined,
    group: st?.tx ?? st,
  });

  const baseDisabled = (kind: ListenerKind): string[] =>
    kind === 'mx' ? ['AUTH', ...(deps.tls ? [] : ['STARTTLS'])] : deps.tls ? [] : ['STARTTLS'];

  function endTx(st: ConnState, outcome: string, error = false): void {
    if (!st.tx) return;
    st.tx.span.setAttribute('mailgate.outcome', outcome);
    if (error) st.tx.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    st.tx.span.end();
    st.tx = null;
  }

  async function filterClient(st: ConnState, ip: string): Promise<Error | null> {
    if (!filter) return null;
    st.filteredIp = ip;
    let r: ConnectFilterResult;
    try {
      r = await filter.check(ip);
    } catch (err) {
      log.warn({ err, ip }, 'connect filter failed: refusing temporarily');
      const e = smtpError(421, '4.7.0 Temporary failure checking the client address, try again later');
      refused('filter-error', st.listener, why(st, ip, 'connect', e));
      return e;
    }
    st.span.setAttribute('mailgate.dnsbl.score', r.score);
    st.listed = r.action === 'reject' ? r : null;
    if (r.action === 'reject') {
      st.span.setAttribute('mailgate.dnsbl.zone', r.zone ?? '');
      if (!hasExceptions) {
        const e = smtpError(554, listedReplyText(ip, r));
        refused('dnsbl', st.listener, why(st, ip, 'connect', e));
        log.info({ ip, zone: r.zone, score: r.score }, 'client refused at connect: listed');
        return e;
      }
    }
    return null;
  }

  function hooksFor(kind: ListenerKind): GuardHooks {
    return {
      created(conn) {
        const span = deps.tracer.startSpan('smtp.session', {
          kind: SpanKind.SERVER,
          attributes: { 'mailgate.listener': kind, 'client.address': conn.remoteAddress },
        });
        const st: ConnState = {
          id: conn.id,
          listener: kind,
          span,
          ctx: trace.setSpan(context.active(), span),
          expired: false,
          listed: null,
          lastLine: '',
          unknown: 0,
          unknownRcpts: 0,
          tx: null,
        };
        states.set(conn.id, st);
        connCounter?.add(1, { listener: kind });
        st.timer = setTimeout(() => {
          st.expired = true;
          if (!conn.busy) conn.send(421, '4.4.2 Session time limit exceeded, closing connection');
        }, limits.sessionTimeoutMs);
        st.timer.unref();
      },
      beforeCommand(conn, line, flags): CommandRefusal | null {
        const st = states.get(conn.id);
        if (!st) return null;
        if (st.expired)
          return { code: 421, text: '4.4.2 Session time limit exceeded, closing connection', close: true };
        if (flags) {
          refused('bare-cr-lf', kind);
          if (cfg.lineEndings === 'reject') {
            return {
              code: 521,
              text: '5.5.2 Error: bare CR or LF received; SMTP requires CRLF line endings',
              close: true,
            };
          }
          if (flags & BARE_CR) return { code: 500, text: '5.5.2 Error: bare CR in command line', close: false };
          // normalize: a bare LF ends the line like CRLF (which is how smtp-server already split it).
        }
        const name = (line.split(' ', 1)[0] ?? '').toUpperCase();
        // `line` is binary (one char per octet) without its CRLF. The limit counts the CRLF (RFC 5321).
        const octets = line.length + 2;
        if (octets > limits.maxCommandLineOctets) {
          const auth = conn.inAuthExchange || name === 'AUTH';
          if (!auth || octets > AUTH_LINE_OCTETS) {
            refused('line-too-long', kind);
            // The line is dropped whole and the session stays usable (smtp-server already split it off the
            // stream). A SASL exchange is cancelled, so the client's next line is read as a command again.
            if (!auth) return { code: REPLIES.lineTooLong.code, text: replyText(REPLIES.lineTooLong), close: false };
            conn.cancelAuthExchange();
            return { code: REPLIES.authLineTooLong.code, text: replyText(REPLIES.authLineTooLong), close: false };
          }
        }
        if (name === 'PROXY' && !conn.inAuthExchange) {
          refused('proxy-untrusted', kind);
          return { code: 554, text: '5.7.1 PROXY protocol is not accepted from this address', close: true };
        }
        if (!conn.ready) {
          refused('pregreet', kind);
          return null; // smtp-server answers "421 You talk too soon" and closes
        }
        if (conn.inAuthExchange) return null;
        st.lastLine = line;
        if (kind === 'submission' && name === 'AUTH' && !conn.secure) {
          refused('auth-before-tls', kind);
          return { code: 538, text: '5.7.11 Encryption required: issue STARTTLS first', close: false };
        }
        if (!conn.isKnownCommand(name)) {
          st.unknown++;
          conn.resetLibraryUnknownCounter();
          if (st.unknown >= limits.maxUnknownCommands) {
            refused('unknown-commands', kind);
            return { code: 421, text: '4.7.0 Too many unrecognized commands, closing connection', close: true };
          }
        }
        return null;
      },
      expectsProxy: (addr) => proxyNets.matches(addr),
      xclientAllowed: (addr) => xclientNets.matches(addr),
    };
  }

  function optionsFor(kind: ListenerKind): SMTPServerOptions {
    const tlsOpts: Partial<SecureContextOptions> = deps.tls
      ? { key: deps.tls.key, cert: deps.tls.cert, minVersion: cfg.tls?.minVersion ?? 'TLSv1.2' }
      : {};
    return {
      ...tlsOpts,
      name: deps.hostname,
      banner: cfg.banner || undefined,
      logger: false,
      size: limits.maxMessageBytes,
      maxClients: limits.maxConnections,
      maxRecipients: limits.maxRecipients,
      socketTimeout: limits.idleTimeoutMs,
      closeTimeout: cfg.drainTimeoutMs,
      disableReverseLookup: !cfg.reverseDns,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      hideSTARTTLS: !deps.tls,
      disabledCommands: baseDisabled(kind),
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: kind === 'mx',
      allowInsecureAuth: false,
      onConnect: (session, cb) => onConnect(kind, session, cb),
      onSecure: (_socket, session, cb) => {
        if (kind === 'submission') session.disabledCommands = baseDisabled(kind);
        cb();
      },
      onAuth: (auth, session, cb) => void onAuth(kind, auth, session, cb),
      onMailFrom: (_addr, session, cb) => void onMailFrom(kind, session, cb),
      onRcptTo: (_addr, session, cb) => void onRcptTo(kind, session, cb),
      onData: (stream, session, cb) => onData(kind, stream, session, cb),
      onClose: (session) => onClose(session),
    };
  }

  function onConnect(kind: ListenerKind, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = states.get(session.id);
    if (!st) return cb();
    const ip = normalizeIp(session.remoteAddress);
    const n = perIp.get(ip) ?? 0;
    if (n >= limits.maxConnectionsPerIp) {
      const e = smtpError(421, `4.7.0 Too many connections from [${ip}], try again later`);
      refused('connections-per-ip', kind, why(st, ip, 'connect', e));
      return cb(e);
    }
    perIp.set(ip, n + 1);
    st.ipCounted = ip;
    const trusted = trustedNets.matches(ip);
    st.span.setAttribute('mailgate.trusted_network', trusted);
    if (kind === 'submission' && !session.secure) session.disabledCommands = [...baseDisabled(kind), 'AUTH'];
    const lists = !trusted ? deps.listPhase?.atConnect(ip) : undefined;
    if (lists?.refusal) {
      const e = smtpError(lists.refusal.code, lists.refusal.text);
      refused('ip-blocked', kind, why(st, ip, 'connect', e));
      log.info({ ip }, 'client refused at connect: ip-block list');
      return cb(e);
    }
    if (lists?.skipDnsbl) st.allowListed = true;
    const waits: Promise<Error | null>[] = [];
    if (kind === 'mx' && !trusted && !lists?.skipDnsbl) {
      if (limits.pregreetDelayMs > 0) {
        waits.push(new Promise((r) => setTimeout(() => r(null), limits.pregreetDelayMs).unref()));
      }
      if (filter) waits.push(filterClient(st, ip));
    }
    if (waits.length === 0) return cb();
    void Promise.all(waits).then((results) => cb(results.find((e) => e) ?? null));
  }

  async function onAuth(
    kind: ListenerKind,
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): Promise<void> {
    // XCLIENT LOGIN= reaches here only from hosts in ingress.xclient.trusted.
    if (auth.method === 'XCLIENT') return cb(null, { user: auth.username });
    if (kind !== 'submission' || !session.secure) return cb(smtpError(538, '5.7.11 Encryption required'));
    const ip = normalizeIp(session.remoteAddress);
    if (authFailures?.enabled) {
      try {
        if ((await authFailures.current(ip)) >= authFailures.max) {
          refused('auth-rate', kind);
          return cb(smtpError(454, '4.7.0 Too many failed authentication attempts, try again later'));
        }
      } catch (err) {
        log.warn({ err }, 'auth failure counter unavailable');
        if (limits.onRedisError === 'tempfail') return cb(smtpError(454, '4.7.0 Temporary authentication failure'));
      }
    }
    const ok = await deps.users.verify(auth.username ?? '', auth.password ?? '');
    if (ok) return cb(null, { user: auth.username });
    refused('auth-failed', kind);
    log.info({ ip, user: auth.username }, 'authentication failed');
    await authFailures?.hit(ip).catch(() => undefined);
    cb(null, {
      message: '5.7.8 Authentication credentials invalid',
      responseCode: 535,
    } as SMTPServerAuthenticationResponse);
  }

  async function onMailFrom(
    kind: ListenerKind,
    session: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): Promise<void> {
    const st = states.get(session.id);
    if (!st) return cb(smtpError(451, '4.3.0 Session state lost'));
    const ip = normalizeIp(session.remoteAddress);
    const arg = commandArgument(st.lastLine, 'MAIL FROM');
    const parsed = arg === null ? null : parsePath(arg, { allowNull: true });
    if (!parsed || !parsed.ok) {
      return cb(smtpError(501, `5.1.7 Bad sender address syntax${parsed && !parsed.ok ? `: ${parsed.reason}` : ''}`));
    }
    if (kind === 'submission' && !session.user) {
      const e = smtpError(530, '5.7.0 Authentication required');
      refused('auth-required', kind, {
        ...why(st, ip, 'mail', e, { session }),
        mailFrom: parsed.mailbox?.address ?? '',
      });
      return cb(e);
    }
    const trusted = trustedNets.matches(ip);
    const senderBlock = trusted || session.user ? null : deps.listPhase?.atMailFrom(parsed.mailbox?.address ?? '');
    if (senderBlock) {
      const e = smtpError(senderBlock.code, senderBlock.text);
      refused('sender-blocked', kind, {
        ...why(st, ip, 'mail', e, { session }),
        mailFrom: parsed.mailbox?.address ?? '',
      });
      log.info({ ip, from: parsed.mailbox?.address }, 'sender refused: sender-block list');
      return cb(e);
    }
    // XCLIENT may have replaced the client address since connect: the new one is checked too.
    if (filter && kind === 'mx' && !trusted && st.filteredIp !== ip) {
      const refusal = await filterClient(st, ip);
      if (refusal) return cb(refusal);
    }
    if (msgRate?.enabled && !(limits.rateLimitExemptTrusted && (trusted || session.user))) {
      try {
        if ((await msgRate.hit(ip)) > msgRate.max) {
          const e = smtpError(450, `4.7.1 Too many messages from [${ip}], try again later`);
          refused('message-rate', kind, {
            ...why(st, ip, 'mail', e, { session }),
            mailFrom: parsed.mailbox?.address ?? '',
          });
          return cb(e);
        }
      } catch (err) {
        log.warn({ err }, 'message rate counter unavailable');
        if (limits.onRedisError === 'tempfail') {
          return cb(smtpError(451, '4.3.0 Temporary local problem (rate limiter unavailable), try again later'));
        }
      }
    }
    endTx(st, 'reset'); // RSET/EHLO between transactions leaves no hook; close the old span here
    // Each message gets its own trace (its audit record), rooted at its transaction and linked to the session's
    // span: an internal relay can carry thousands of messages over one session, which must not become one trace.
    const span = deps.tracer.startSpan(
      'smtp.transaction',
      {
        kind: SpanKind.SERVER,
        root: true,
        links: [{ context: st.span.spanContext() }],
        attributes: {
          'mailgate.listener': kind,
          'client.address': ip,
          'mailgate.mail_from': parsed.mailbox?.address ?? '',
          'mailgate.authenticated': !!session.user,
          'mailgate.trusted_network': trusted,
        },
      },
      st.ctx,
    );
    const tx: TxState = {
      span,
      ctx: trace.setSpan(st.ctx, span),
      mailFrom: parsed.mailbox?.address ?? '',
      rcpts: [],
      inbound: [],
      keys: new Set(),
    };
    st.tx = tx;
    if (deps.senderAuth) {
      const helo = String(session.hostNameAppearsAs ?? '');
      const a = await deps.senderAuth.atMailFrom(
        { ip, helo, mailFrom: tx.mailFrom, authenticated: !!session.user, trusted },
        tx.ctx,
      );
      tx.auth = a.state;
      if (a.refuse) {
        refused('sender-auth', kind, why(st, ip, 'mail', a.refuse, { session }));
        if (st.tx === tx) endTx(st, 'sender-auth');
        return cb(a.refuse);
      }
    }
    cb();
  }

  async function onRcptTo(
    kind: ListenerKind,
    session: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): Promise<void> {
    const st = states.get(session.id);
    const tx = st?.tx;
    if (!st || !tx) return cb(smtpError(503, '5.5.1 Error: need MAIL command'));
    const arg = commandArgument(st.lastLine, 'RCPT TO');
    const parsed = arg === null ? null : parseRecipient(arg, policy);
    if (!parsed || !parsed.ok) {
      return cb(
        smtpError(501, `5.1.3 Bad recipient address syntax${parsed && !parsed.ok ? `: ${parsed.message}` : ''}`),
      );
    }
    const mb = parsed.mailbox;
    const ip = normalizeIp(session.remoteAddress);
    if (st.listed && !filter?.isException?.(mb.address)) {
      const e = smtpError(554, listedReplyText(ip, st.listed));
      refused('dnsbl', kind, why(st, ip, 'rcpt', e, { rcptTo: [mb.address], session }));
      return cb(e);
    }
    const d = decideRecipient(mb, { authenticated: !!session.user, trusted: trustedNets.matches(ip) }, policy);
    if (!d.accept) {
      const e = smtpError(d.code, `${d.status} ${d.message}`);
      refused(
        d.status === '5.7.1' ? 'relay-denied' : 'recipient-unknown',
        kind,
        why(st, ip, 'rcpt', e, { rcptTo: [mb.address], session }),
      );
      log.info({ ip, rcpt: mb.address, reason: d.message }, 'recipient refused');
      return cb(e);
    }
    if (d.inbound && deps.recipientPhase) {
      const r = await checkRecipientPhase(deps.recipientPhase, st, tx, d.address, ip, kind);
      if (r) return cb(r);
    }
    const key = d.address.toLowerCase();
    if (!tx.keys.has(key)) {
      tx.keys.add(key);
      tx.rcpts.push(d.address);
      tx.inbound.push(d.inbound);
    }
    cb();
  }

  async function checkRecipientPhase(
    phase: RecipientPhase,
    st: ConnState,
    tx: TxState,
    address: string,
    ip: string,
    kind: ListenerKind,
  ): Promise<Error | null> {
    let r: Awaited<ReturnType<RecipientPhase['check']>>;
    try {
      r = await phase.check(address, ip, st.unknownRcpts);
    } catch (err) {
      log.warn({ err, rcpt: address }, 'recipient check failed: 451');
      return smtpError(451, '4.4.3 Recipient verification unavailable, try again later');
    }
    if (r.unknown) st.unknownRcpts++;
    if (!r.refusal) return null;
    const e = smtpError(r.refusal.code, r.refusal.text);
    refused(r.refusal.reason, kind, why(st, ip, 'rcpt', e, { rcptTo: [address] }));
    // Rejected recipients are part of the transaction's audit record (its trace), though no message exists.
    tx.span.addEvent('recipient.rejected', { rcpt: address, code: r.refusal.code, reason: r.refusal.reason });
    return e;
  }

  function onData(
    kind: ListenerKind,
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    cb: (err?: Error | null, message?: string) => void,
  ): void {
    const st = states.get(session.id);
    const tx = st?.tx;
    const normalize = cfg.lineEndings === 'normalize';
    const guard = new LineEndingGuard();
    const nul = new NulGuard(cfg.nulBytes);
    let chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let done = false;
    stream.on('data', (c: Buffer) => {
      if (over) return;
      const n = nul.feed(c);
      const b = normalize ? guard.normalize(n) : (guard.scan(n), n);
      size += b.length;
      if (size > limits.maxMessageBytes) {
        over = true;
        chunks = [];
        return;
      }
      chunks.push(b);
    });
    stream.on('error', () => {
      if (st) endTx(st, 'client-gone', true);
    });
    stream.on('end', () => {
      if (done) return;
      done = true;
      const tail = guard.finish();
      if (normalize && tail.length) {
        chunks.push(tail);
        size += tail.length;
      }
      if (!st || !tx) return cb(smtpError(503, '5.5.1 Error: no transaction'));
      if (over || stream.sizeExceeded || size > limits.maxMessageBytes) {
        const e = smtpError(
          552,
          `5.3.4 Message size exceeds fixed maximum message size of ${limits.maxMessageBytes} bytes`,
        );
        refused('size', kind, why(st, normalizeIp(session.remoteAddress), 'data', e, { session }));
        endTx(st, 'too-big');
        return cb(e);
      }
      if (!normalize && !guard.clean) {
        const e = smtpError(554, '5.6.0 Message contains bare CR or LF characters (lines must end with CRLF); refused');
        refused('bare-cr-lf', kind, why(st, normalizeIp(session.remoteAddress), 'data', e, { session }));
        endTx(st, 'bare-cr-lf');
        log.info(
          { ip: session.remoteAddress, bareLf: guard.bareLf, bareCr: guard.bareCr },
          'message refused: bare CR/LF',
        );
        return cb(e);
      }
      if (nul.refuse) {
        refused('nul-byte', kind);
        endTx(st, 'nul-byte');
        log.info({ ip: session.remoteAddress, nul: nul.count }, 'message refused: NUL in content');
        return cb(smtpError(REPLIES.nulInData.code, replyText(REPLIES.nulInData)));
      }
      if (nul.count > 0) log.info({ ip: session.remoteAddress, nul: nul.count }, 'NUL octets stripped from message');
      void accept(kind, st, tx, session, Buffer.concat(chunks, size)).then(
        (reply) => cb(null, reply),
        (err: Error) => cb(err),
      );
    });
  }

  async function accept(
    kind: ListenerKind,
    st: ConnState,
    tx: TxState,
    session: SMTPServerSession,
    body: Buffer,
  ): Promise<string> {
    const t0 = performance.now();
    const id = newMessageId();
    const now = new Date();
    const ip = normalizeIp(session.remoteAddress);
    const cipher = session.secure && session.tlsOptions ? session.tlsOptions : null;
    const tls = cipher ? { enabled: true, protocol: cipher.version, cipher: cipher.name } : { enabled: false };
    const traceId = traceIdOf(tx.span);
    const traceState = tx.span.spanContext().traceState?.serialize();
    const clientHostname =
      session.clientHostname && !String(session.clientHostname).startsWith('[')
        ? String(session.clientHostname)
        : undefined;
    const helo = session.hostNameAppearsAs ? String(session.hostNameAppearsAs) : '';
    const authed = deps.senderAuth
      ? await deps.senderAuth.atEndOfData(
          {
            ip,
            helo,
            mailFrom: tx.mailFrom,
            authenticated: !!session.user,
            trusted: trustedNets.matches(ip),
            mailFromState: tx.auth,
          },
          stripHeaders(body),
          tx.ctx,
        )
      : null;
    if (authed?.refuse) {
      refused('sender-auth', kind, why(st, ip, 'data', authed.refuse, { session }));
      endTx(st, 'sender-auth');
      throw authed.refuse;
    }
    const raw = Buffer.concat([
      ingressHeaders({
        helo,
        clientHostname,
        clientIp: ip,
        byHost: deps.hostname,
        protocol: session.transmissionType || 'ESMTP',
        id,
        tls: cipher ? { protocol: cipher.version, cipher: cipher.name } : undefined,
        rcptTo: tx.rcpts,
        date: now,
        product: deps.product ?? 'mailgate',
        traceId,
      }),
      authed ? authed.raw : stripHeaders(body),
    ]);
    const direction = directionOf(tx.inbound);
    const trusted = trustedNets.matches(ip);
    const received: PipelineMessage = {
      envelope: newEnvelope({
        id,
        receivedAt: now.toISOString(),
        mailFrom: tx.mailFrom,
        rcptTo: tx.rcpts,
        size: raw.length,
        direction,
        session: {
          clientIp: ip,
          clientPort: session.remotePort,
          ...(clientHostname ? { clientHostname } : {}),
          helo,
          tls,
          ...(session.user ? { authUser: String(session.user) } : {}),
          trustedNetwork: trusted,
          ...(st.allowListed ? { ipAllowListed: true } : {}),
          listener: kind,
          ingressHost: deps.instance,
        },
        trace: { traceparent: traceparentOf(tx.span), ...(traceState ? { tracestate: traceState } : {}), traceId },
        origin: 'smtp',
      }),
      raw,
    };
    // Sender authentication decided inside the SMTP transaction: its verdict is the first one the message carries.
    const msg = authed ? forward(received, authed.verdict) : received;
    const envelope = msg.envelope;
    const event = trackingEvent('received', msg, {
      service: 'ingress-smtp',
      host: deps.instance,
      at: envelope.receivedAt,
      details: {
        size: raw.length,
        tls,
        listener: kind,
        direction,
        helo,
        ...(session.user ? { authUser: String(session.user) } : {}),
        ...(authed ? { auth: authed.event } : {}),
        ...messageFacts(body),
      },
    });
    tx.span.setAttributes({ 'mailgate.message_id': id, 'mailgate.size': raw.length, 'mailgate.direction': direction });
    const record = newRecord(authed ? authed.topic : TOPICS.inbound, msg, {
      trace: injectTraceHeaders(tx.ctx),
      // Held by ingress (DMARC p=quarantine): a release with recheck re-enters where ingress hands over.
      headers: authed?.quarantined ? { [RECORD_HEADERS.sourceTopic]: TOPICS.inbound } : {},
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      // Message and its 'received' event in one produce request: the 250 means both are durable.
      await Promise.race([
        deps.producer.send([
          record,
          eventRecord(event),
          ...(authed?.quarantined ? [eventRecord(quarantinedEvent(msg, authed.verdict, deps.instance))] : []),
        ]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no acknowledgement within ${cfg.acceptTimeoutMs} ms`)),
            cfg.acceptTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      stats.tempfailed++;
      const e = smtpError(451, '4.3.0 Temporary failure: message not queued, try again later');
      refused('broker', kind, why(st, ip, 'data', e, { session }));
      log.warn({ err: (err as Error).message, id }, 'durable produce failed: 451');
      endTx(st, 'tempfail', true);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    const ms = performance.now() - t0;
    stats.accepted++;
    if (stats.acceptLatencyMs.length < MAX_LATENCY_SAMPLES) stats.acceptLatencyMs.push(ms);
    acceptedCounter?.add(1, { listener: kind, direction });
    acceptHist?.record(ms / 1000, { listener: kind });
    log.debug({ id, from: envelope.mailFrom, rcpt: envelope.rcptTo, size: raw.length, ip }, 'message queued');
    endTx(st, 'queued');
    return `2.0.0 Ok: queued as ${id}`;
  }

  function onClose(session: SMTPServerSession): void {
    const st = states.get(session.id);
    if (!st) return;
    states.delete(session.id);
    endTx(st, 'abandoned');
    clearTimeout(st.timer);
    if (st.ipCounted) {
      const n = (perIp.get(st.ipCounted) ?? 1) - 1;
      if (n <= 0) perIp.delete(st.ipCounted);
      else perIp.set(st.ipCounted, n);
    }
    st.span.end();
  }

  const servers = new Map<ListenerKind, GuardedServer>();
  for (const kind of ['mx', 'submission'] as const) {
    if (!cfg.listeners[kind].enabled) continue;
    const server = new GuardedServer(optionsFor(kind), hooksFor(kind));
    // Connection-level errors (resets, TLS failures) are the client's problem, not ours: log, never crash.
    server.on('error', (err: Error) => log.debug({ err: err.message, listener: kind }, 'smtp connection error'));
    servers.set(kind, server);
  }

  const addresses: Partial<Record<ListenerKind, ListenerAddress>> = {};
  let closing: Promise<void>[] = [];
  let sweep: NodeJS.Timeout | undefined;

  return {
    addresses,
    stats,
    senderAuthStats: deps.senderAuth?.stats ?? null,
    get openSessions() {
      return states.size;
    },
    async listen() {
      for (const [kind, server] of servers) {
        const l = cfg.listeners[kind];
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) =>
            reject(new Error(`ingress.listeners.${kind}: cannot listen on ${l.host}:${l.port}: ${err.message}`));
          server.server.once('error', onError);
          server.listen(l.port, l.host, () => {
            server.server.off('error', onError);
            resolve();
          });
        });
        const a = server.server.address();
        addresses[kind] = { host: l.host, port: typeof a === 'object' && a ? a.port : l.port };
        log.info({ listener: kind, ...addresses[kind], tls: !!deps.tls }, 'smtp listener ready');
      }
      return addresses;
    },
    stopIntake() {
      if (draining) return;
      draining = true;
      closing = [...servers.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      // Sessions waiting for a command get 421 now; those in DATA (or awaiting the broker) finish first and are
      // swept once idle. smtp-server itself answers 421 to any new command after close().
      const sweepOnce = () => {
        for (const s of servers.values()) {
          for (const c of s.views()) if (!c.busy) c.send(421, '4.3.2 Service shutting down, try again later');
        }
      };
      sweepOnce();
      sweep = setInterval(sweepOnce, 100);
      sweep.unref();
    },
    async drained() {
      if (!draining) this.stopIntake();
      await Promise.all(closing);
      clearInterval(sweep);
    },
    updateTls(tls) {
      for (const s of servers.values()) s.updateSecureContext({ key: tls.key, cert: tls.cert });
    },
  };
}
