// One file (~370 lines, ~260 of them createIngress): the wiring of every SMTP phase to its module; the public
// types (deps, stats, listener addresses) take the rest. The decisions live in phases/.
import { performance } from 'node:perf_hooks';
import { newMessageId } from '@mailgate/contracts';
import type { OutRecord } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';
import { injectTraceHeaders, traceIdOf, traceparentOf } from '@mailgate/telemetry';
import type { Meter, Tracer } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import { networkMatcher, normalizeIp } from './cidr.js';
import type { IngressConfig, ListenerKind } from './config.js';
import type { ConnectFilter } from './connect-filter.js';
import type { ListPhase } from './list-phase.js';
import { Listeners, type ListenerAddress, type SmtpHandlers } from './listeners.js';
import { acceptedSession } from './phases/accepted.js';
import { commandPhase } from './phases/command.js';
import { connectPhase, dnsblPhase } from './phases/connect.js';
import { DATA_OUTCOMES, DataCollector, dataVerdict, endOfData } from './phases/data.js';
import { authPhase, disabledCommands } from './phases/helo.js';
import { mailPhase, mailSenderAuth, parseSender } from './phases/mail.js';
import { rcptPhase, verifyRecipient } from './phases/rcpt.js';
import type { ConnState, Refusal, TxState } from './phases/state.js';
import { WindowCounter } from './rate-limit.js';
import type { RecipientPhase } from './recipient-phase.js';
import type { RefusalRecorder } from './refusals.js';
import { REPLIES, replyText, smtpError } from './replies.js';
import { buildRelayPolicy } from './relay.js';
import type { SenderAuthPhase } from './sender-auth-phase.js';
import { Sessions } from './sessions.js';
import { assertSmtpServerInternals, type GuardHooks } from './smtp-guard.js';
import type { UserStore } from './users.js';

export { AUTH_LINE_OCTETS } from './phases/command.js';
export type { ListenerAddress } from './listeners.js';

/**
 * The SMTP front door as one composable object. This file only wires: it creates the listeners (listeners.ts,
 * smtp-guard.ts), routes each smtp-server callback to its phase function — phases/connect.ts, command.ts (every
 * command line), helo.ts (EHLO/STARTTLS/AUTH), mail.ts, rcpt.ts, data.ts (with accepted.ts, the records to
 * produce) — and applies their decisions through the session book (sessions.ts: state, spans, refusal counts and
 * tracking events); the replies come from replies.ts. Accept stats and metrics are kept here.
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

const MAX_LATENCY_SAMPLES = 200_000;

export function createIngress(deps: IngressDeps): Ingress {
  assertSmtpServerInternals();
  const { config: cfg, log } = deps;
  const limits = cfg.limits;
  const policy = buildRelayPolicy(cfg.acceptedDomains);
  const trustedNets = networkMatcher(cfg.trustedNetworks);
  const proxyNets = networkMatcher(cfg.proxy.trusted);
  const xclientNets = networkMatcher(cfg.xclient.trusted);
  const counter = (kind: string, max: number, windowSeconds: number) =>
    deps.redis ? new WindowCounter(deps.redis, kind, max, windowSeconds) : null;
  const msgRate = counter('ingress:msg', limits.messageRate.max, limits.messageRate.windowSeconds);
  const authFailures = counter('ingress:authfail', cfg.auth.failures.max, cfg.auth.failures.windowSeconds);
  const filter = deps.connectFilter ?? null;
  const sessions = new Sessions({ ...deps, sessionTimeoutMs: limits.sessionTimeoutMs });
  const stats: IngressStats = { accepted: 0, tempfailed: 0, acceptLatencyMs: [] };

  const m = deps.meter;
  const acceptedCounter = m?.createCounter('mailgate_ingress_messages_accepted', {
    description: 'messages queued (250)',
  });
  const acceptHist = m?.createHistogram('mailgate_ingress_accept_duration_seconds', {
    description: 'end of DATA to 250 (durable produce), seconds',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15] },
  });

  /** The connect-time DNSBL check (also at MAIL FROM after XCLIENT ADDR=), applied to the session. */
  async function screenClient(st: ConnState, ip: string): Promise<Refusal | null> {
    if (!filter) return null;
    st.filteredIp = ip;
    const d = await dnsblPhase(filter, ip, log);
    if (d.result) {
      st.span.setAttribute('mailgate.dnsbl.score', d.result.score);
      st.listed = d.listed;
      if (d.listed) st.span.setAttribute('mailgate.dnsbl.zone', d.listed.zone ?? '');
    }
    return d.refuse;
  }

  const hooks = (kind: ListenerKind): GuardHooks => ({
    created: (conn) => void sessions.open(conn, kind),
    beforeCommand(conn, line, flags) {
      const st = sessions.get(conn.id);
      if (!st) return null;
      const d = commandPhase(
        {
          listener: kind,
          line,
          flags,
          expired: st.expired,
          ready: conn.ready,
          secure: conn.secure,
          inAuthExchange: conn.inAuthExchange,
          known: conn.isKnownCommand((line.split(' ', 1)[0] ?? '').toUpperCase()),
          unknownSoFar: st.unknown,
        },
        cfg,
      );
      for (const reason of d.reasons) sessions.count(reason, kind);
      if (d.cancelAuthExchange) conn.cancelAuthExchange();
      if (d.remember) st.lastLine = line;
      if (d.unknownCommand) {
        st.unknown++;
        conn.resetLibraryUnknownCounter();
      }
      return d.refuse ?? null;
    },
    expectsProxy: (addr) => proxyNets.matches(addr),
    xclientAllowed: (addr) => xclientNets.matches(addr),
  });

  const handlers = (kind: ListenerKind): SmtpHandlers => ({
    onConnect: (session, cb) => onConnect(kind, session, cb),
    onSecure: (_socket, session, cb) => {
      if (kind === 'submission') session.disabledCommands = disabledCommands(kind, !!deps.tls, true);
      cb();
    },
    onAuth: (auth, session, cb) => {
      const ip = normalizeIp(session.remoteAddress);
      const attempt = { listener: kind, secure: !!session.secure, ip, ...auth };
      void authPhase(attempt, {
        users: deps.users,
        failures: authFailures,
        onRedisError: limits.onRedisError,
        log,
      }).then((a) => {
        if (!a.refuse) return cb(null, { user: a.user });
        const e = sessions.refuse(sessions.get(session.id), kind, ip, a.refuse, session);
        if (!a.invalid) return cb(e);
        cb(null, { message: e.message, responseCode: e.responseCode } as SMTPServerAuthenticationResponse);
      });
    },
    onMailFrom: (_addr, session, cb) => void onMailFrom(kind, session, cb),
    onRcptTo: (_addr, session, cb) => void onRcptTo(kind, session, cb),
    onData: (stream, session, cb) => {
      const st = sessions.get(session.id);
      const tx = st?.tx;
      const data = new DataCollector(cfg);
      let done = false;
      stream.on('data', (c: Buffer) => data.feed(c));
      stream.on('error', () => {
        if (st) sessions.endTx(st, 'client-gone', true);
      });
      stream.on('end', () => {
        if (done) return;
        done = true;
        const collected = data.finish();
        if (!st || !tx) return cb(smtpError(REPLIES.noTransaction));
        const ip = normalizeIp(session.remoteAddress);
        const r = dataVerdict(collected, cfg, stream.sizeExceeded);
        if (r) {
          const e = sessions.refuse(st, kind, ip, r, session);
          sessions.endTx(st, DATA_OUTCOMES[r.reason ?? ''] ?? 'refused');
          return cb(e);
        }
        if (collected.nul > 0) log.info({ ip, nul: collected.nul }, 'NUL octets stripped from message');
        void accept(st, tx, session, collected.body).then(
          (reply) => cb(null, reply),
          (err: Error) => cb(err),
        );
      });
    },
    onClose: (session) => sessions.close(session.id),
  });

  function onConnect(kind: ListenerKind, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = sessions.get(session.id);
    if (!st) return cb();
    const ip = normalizeIp(session.remoteAddress);
    const trusted = trustedNets.matches(ip);
    const connectionsFromIp = sessions.connectionsFrom(ip);
    const d = connectPhase({ listener: kind, ip, connectionsFromIp, trusted }, limits, deps.listPhase);
    if (d.holdsSlot) {
      sessions.holdSlot(st, ip);
      st.span.setAttribute('mailgate.trusted_network', trusted);
      if (kind === 'submission' && !session.secure) {
        session.disabledCommands = disabledCommands(kind, !!deps.tls, false);
      }
    }
    if (d.refuse) return cb(sessions.refuse(st, kind, ip, d.refuse));
    if (d.allowListed) st.allowListed = true;
    const waits: Promise<Error | null>[] = [];
    if (d.pregreetDelayMs > 0) waits.push(new Promise((r) => setTimeout(() => r(null), d.pregreetDelayMs).unref()));
    if (d.dnsbl && filter) {
      waits.push(screenClient(st, ip).then((r) => (r ? sessions.refuse(st, kind, ip, r) : null)));
    }
    if (waits.length === 0) return cb();
    void Promise.all(waits).then((results) => cb(results.find((e) => e) ?? null));
  }

  async function onMailFrom(
    kind: ListenerKind,
    session: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): Promise<void> {
    const st = sessions.get(session.id);
    if (!st) return cb(smtpError(REPLIES.sessionStateLost));
    const ip = normalizeIp(session.remoteAddress);
    const parsed = parseSender(st.lastLine);
    if ('refuse' in parsed) return cb(sessions.refuse(st, kind, ip, parsed.refuse, session));
    const trusted = trustedNets.matches(ip);
    const authenticated = !!session.user;
    const facts = { listener: kind, ip, sender: parsed.sender, authenticated, trusted, dnsblCheckedIp: st.filteredIp };
    const r = await mailPhase(facts, {
      lists: deps.listPhase,
      // XCLIENT may have replaced the client address since connect: the new one is checked too.
      dnsbl: filter ? (addr) => screenClient(st, addr) : null,
      messageRate: msgRate,
      limits,
      log,
    });
    if (r) return cb(sessions.refuse(st, kind, ip, r, session));
    const tx = sessions.startTx(st, { ip, mailFrom: parsed.sender, authenticated, trusted });
    if (deps.senderAuth) {
      const helo = String(session.hostNameAppearsAs ?? '');
      const a = await mailSenderAuth(
        deps.senderAuth,
        { ip, helo, mailFrom: tx.mailFrom, authenticated, trusted },
        tx.ctx,
      );
      tx.auth = a.state;
      if (a.refuse) {
        const e = sessions.refuse(st, kind, ip, a.refuse, session);
        if (st.tx === tx) sessions.endTx(st, 'sender-auth');
        return cb(e);
      }
    }
    cb();
  }

  async function onRcptTo(
    kind: ListenerKind,
    session: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): Promise<void> {
    const st = sessions.get(session.id);
    const tx = st?.tx;
    if (!st || !tx) return cb(smtpError(REPLIES.needMail));
    const ip = normalizeIp(session.remoteAddress);
    const facts = { line: st.lastLine, ip, authenticated: !!session.user, trusted: trustedNets.matches(ip) };
    const d = rcptPhase({ ...facts, listed: st.listed }, policy, filter);
    if (d.refuse) return cb(sessions.refuse(st, kind, ip, d.refuse, session));
    if (d.inbound && deps.recipientPhase) {
      const v = await verifyRecipient(deps.recipientPhase, d.address, ip, st.unknownRcpts, log);
      if (v.unknown) st.unknownRcpts++;
      if (v.refuse) {
        const e = sessions.refuse(st, kind, ip, v.refuse, session);
        // Rejected recipients are part of the transaction's audit record (its trace), though no message exists.
        if (v.refuse.reason) {
          tx.span.addEvent('recipient.rejected', { rcpt: d.address, code: e.responseCode, reason: v.refuse.reason });
        }
        return cb(e);
      }
    }
    const key = d.address.toLowerCase();
    if (!tx.keys.has(key)) {
      tx.keys.add(key);
      tx.rcpts.push(d.address);
      tx.inbound.push(d.inbound);
    }
    cb();
  }

  /** End of DATA with clean content: sender authentication, the durable produce, then the 250 text. */
  async function accept(st: ConnState, tx: TxState, session: SMTPServerSession, body: Buffer): Promise<string> {
    const t0 = performance.now();
    const kind = st.listener;
    const ip = normalizeIp(session.remoteAddress);
    const traceContext = {
      traceparent: traceparentOf(tx.span),
      tracestate: tx.span.spanContext().traceState?.serialize(),
      traceId: traceIdOf(tx.span),
      headers: injectTraceHeaders(tx.ctx),
    };
    const r = await endOfData(
      acceptedSession(session, st, tx, { ip, trusted: trustedNets.matches(ip) }),
      body,
      { id: newMessageId(), now: new Date(), trace: traceContext, ...deps },
      tx,
      { senderAuth: deps.senderAuth, producer: deps.producer, acceptTimeoutMs: cfg.acceptTimeoutMs, log },
    );
    if (r.refuse) {
      const broker = r.refuse.reason === 'broker';
      if (broker) stats.tempfailed++;
      const e = sessions.refuse(st, kind, ip, r.refuse, session);
      sessions.endTx(st, DATA_OUTCOMES[r.refuse.reason ?? ''] ?? 'refused', broker);
      throw e;
    }
    const { id, direction, size, message } = r.accepted;
    tx.span.setAttributes({ 'mailgate.message_id': id, 'mailgate.size': size, 'mailgate.direction': direction });
    const ms = performance.now() - t0;
    stats.accepted++;
    if (stats.acceptLatencyMs.length < MAX_LATENCY_SAMPLES) stats.acceptLatencyMs.push(ms);
    acceptedCounter?.add(1, { listener: kind, direction });
    acceptHist?.record(ms / 1000, { listener: kind });
    log.debug({ id, from: message.envelope.mailFrom, rcpt: message.envelope.rcptTo, size, ip }, 'message queued');
    sessions.endTx(st, 'queued');
    return replyText(REPLIES.queued(id));
  }

  const listeners = new Listeners({ ...deps, hooks, handlers });
  return {
    addresses: listeners.addresses,
    stats,
    senderAuthStats: deps.senderAuth?.stats ?? null,
    get openSessions() {
      return sessions.size;
    },
    listen: () => listeners.listen(),
    stopIntake: () => listeners.stopIntake(),
    drained: () => listeners.drained(),
    updateTls: (tls) => listeners.updateTls(tls),
  };
}
