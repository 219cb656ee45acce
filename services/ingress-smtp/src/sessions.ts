import type { Logger } from '@mailgate/runtime';
import { traceIdOf } from '@mailgate/telemetry';
import { SpanKind, SpanStatusCode, context, trace, type Meter, type Tracer } from '@opentelemetry/api';
import type { SMTPServerSession } from 'smtp-server';
import type { ListenerKind } from './config.js';
import type { ConnState, Refusal, TxState } from './phases/state.js';
import type { RefusalRecorder } from './refusals.js';
import { REPLIES, replyText, type SmtpReplyError } from './replies.js';
import type { GuardedConnection } from './smtp-guard.js';

/**
 * The session book: per-connection state (phases/state.ts) from socket to close, the per-IP connection count,
 * the session and transaction spans, and how a phase's refusal is applied — counted in
 * `mailgate_ingress_refused{reason}`, recorded as a `refused` tracking event (refusals.ts), logged.
 */
export class Sessions {
  private readonly states = new Map<string, ConnState>();
  private readonly perIp = new Map<string, number>();
  private readonly connCounter;
  private readonly refusedCounter;

  constructor(
    private readonly opts: {
      readonly tracer: Tracer;
      readonly meter?: Meter | undefined;
      readonly log: Logger;
      readonly refusals?: RefusalRecorder | null | undefined;
      readonly sessionTimeoutMs: number;
    },
  ) {
    this.connCounter = opts.meter?.createCounter('mailgate_ingress_connections', {
      description: 'SMTP connections accepted',
    });
    this.refusedCounter = opts.meter?.createCounter('mailgate_ingress_refused', {
      description: 'SMTP refusals by reason',
    });
  }

  get size(): number {
    return this.states.size;
  }

  get(id: string): ConnState | undefined {
    return this.states.get(id);
  }

  /** A socket was accepted: the session span starts, and the session clock. */
  open(conn: GuardedConnection, kind: ListenerKind): ConnState {
    const span = this.opts.tracer.startSpan('smtp.session', {
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
    this.states.set(conn.id, st);
    this.connCounter?.add(1, { listener: kind });
    st.timer = setTimeout(() => {
      st.expired = true;
      if (!conn.busy) conn.send(REPLIES.sessionExpired.code, replyText(REPLIES.sessionExpired));
    }, this.opts.sessionTimeoutMs);
    st.timer.unref();
    return st;
  }

  /** Open connections from `ip` (this instance). */
  connectionsFrom(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  /** The connection takes one of its IP's slots until it closes. */
  holdSlot(st: ConnState, ip: string): void {
    this.perIp.set(ip, this.connectionsFrom(ip) + 1);
    st.ipCounted = ip;
  }

  close(id: string): void {
    const st = this.states.get(id);
    if (!st) return;
    this.states.delete(id);
    this.endTx(st, 'abandoned');
    clearTimeout(st.timer);
    if (st.ipCounted) {
      const n = this.connectionsFrom(st.ipCounted) - 1;
      if (n <= 0) this.perIp.delete(st.ipCounted);
      else this.perIp.set(st.ipCounted, n);
    }
    st.span.end();
  }

  /**
   * Each message gets its own trace (its audit record), rooted at its transaction and linked to the session's
   * span: an internal relay can carry thousands of messages over one session, which must not become one trace.
   */
  startTx(
    st: ConnState,
    t: { readonly ip: string; readonly mailFrom: string; readonly authenticated: boolean; readonly trusted: boolean },
  ): TxState {
    this.endTx(st, 'reset'); // RSET/EHLO between transactions leaves no hook; close the old span here
    const span = this.opts.tracer.startSpan(
      'smtp.transaction',
      {
        kind: SpanKind.SERVER,
        root: true,
        links: [{ context: st.span.spanContext() }],
        attributes: {
          'mailgate.listener': st.listener,
          'client.address': t.ip,
          'mailgate.mail_from': t.mailFrom,
          'mailgate.authenticated': t.authenticated,
          'mailgate.trusted_network': t.trusted,
        },
      },
      st.ctx,
    );
    const tx: TxState = {
      span,
      ctx: trace.setSpan(st.ctx, span),
      mailFrom: t.mailFrom,
      rcpts: [],
      inbound: [],
      keys: new Set(),
    };
    st.tx = tx;
    return tx;
  }

  endTx(st: ConnState, outcome: string, error = false): void {
    if (!st.tx) return;
    st.tx.span.setAttribute('mailgate.outcome', outcome);
    if (error) st.tx.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    st.tx.span.end();
    st.tx = null;
  }

  /** Count a refusal reason (mailgate_ingress_refused). */
  count(reason: string, kind: ListenerKind): void {
    this.refusedCounter?.add(1, { reason, listener: kind });
  }

  /**
   * Apply a phase's refusal: count it, record the `refused` tracking event (with the transaction's sender and
   * recipients so far, unless the refusal names its own), log it. Returns the error smtp-server answers with.
   */
  refuse(
    st: ConnState | undefined,
    kind: ListenerKind,
    ip: string,
    r: Refusal,
    session?: SMTPServerSession,
  ): SmtpReplyError {
    if (r.reason !== undefined) {
      this.count(r.reason, kind);
      const t = r.track;
      if (t) {
        const helo = t.helo !== false && session?.hostNameAppearsAs ? String(session.hostNameAppearsAs) : undefined;
        this.opts.refusals?.record({
          reason: r.reason,
          listener: kind,
          clientIp: ip,
          phase: t.phase,
          reply: `${r.error.responseCode} ${r.error.message}`,
          mailFrom: t.mailFrom ?? st?.tx?.mailFrom,
          rcptTo: t.rcptTo ?? st?.tx?.rcpts,
          traceId: st ? traceIdOf(st.tx?.span ?? st.span) : undefined,
          helo,
          group: st?.tx ?? st,
        });
      }
    }
    if (r.log) this.opts.log.info({ ip, ...r.log.fields }, r.log.msg);
    return r.error;
  }
}
