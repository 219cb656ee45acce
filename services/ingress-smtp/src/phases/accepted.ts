import {
  RECORD_HEADERS,
  TOPICS,
  forward,
  newEnvelope,
  newRecord,
  trackingEvent,
  type Direction,
  type PipelineMessage,
  type StageVerdict,
} from '@mailgate/contracts';
import { eventRecord, type OutRecord } from '@mailgate/bus';
import type { SMTPServerSession } from 'smtp-server';
import type { ListenerKind } from '../config.js';
import { ingressHeaders, stripHeaders } from '../headers.js';
import { messageFacts } from '../message-facts.js';
import { directionOf } from '../relay.js';
import { quarantinedEvent } from '../sender-auth-phase.js';
import type { ConnState, TxState } from './state.js';

/**
 * The accepted message as records, built without I/O: given the session, the transaction and the DATA bytes (and,
 * when sender authentication ran, its outcome), `buildAccepted` returns exactly what ingress produces in one
 * acks=-1 request before it answers 250 — the pipeline record (contracts' `newRecord`), the `received` tracking
 * event and, for a message ingress holds itself, the `quarantined` event. Ids, clock and trace context are inputs.
 */

export interface AcceptedSession {
  readonly listener: ListenerKind;
  readonly clientIp: string;
  readonly clientPort: number;
  /** Reverse DNS name (absent, or a `[literal]`, when unknown). */
  readonly clientHostname?: string | undefined;
  readonly helo: string;
  /** smtp-server's transmission type (ESMTP, ESMTPS, ESMTPSA…). */
  readonly protocol?: string | undefined;
  /** TLS in use: protocol and cipher. */
  readonly tls?: { readonly protocol: string; readonly cipher: string } | null | undefined;
  readonly authUser?: string | undefined;
  readonly trustedNetwork: boolean;
  readonly allowListed?: boolean | undefined;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** Per recipient: local mail for an accepted domain. */
  readonly inbound: readonly boolean[];
}

/** Sender authentication's outcome at end of DATA (sender-auth-phase.ts `atEndOfData`, when not refused). */
export interface AcceptedAuth {
  /** The message to queue: forged Authentication-Results removed, ours prepended. */
  readonly raw: Buffer;
  readonly topic: string;
  readonly verdict: StageVerdict;
  readonly event: Readonly<Record<string, unknown>>;
  readonly quarantined: boolean;
}

export interface AcceptedContext {
  /** The gateway message id (`newMessageId()`). */
  readonly id: string;
  readonly now: Date;
  readonly trace: {
    readonly traceparent: string;
    readonly tracestate?: string | undefined;
    readonly traceId: string;
    /** Record headers carrying the trace context (`injectTraceHeaders`). */
    readonly headers: Readonly<Record<string, string>>;
  };
  /** Our host name (Received `by`). */
  readonly hostname: string;
  /** This instance (pod): envelope and events. */
  readonly instance: string;
  /** Product name in the Received header. */
  readonly product?: string | undefined;
  readonly auth?: AcceptedAuth | null | undefined;
}

export interface Accepted {
  readonly id: string;
  readonly message: PipelineMessage;
  readonly direction: Direction;
  /** Queued size: our headers + the message. */
  readonly size: number;
  /** The record, then the `received` event (and `quarantined`): produced together, the 250 means all are durable. */
  readonly records: OutRecord[];
}

export function buildAccepted(s: AcceptedSession, body: Buffer, c: AcceptedContext): Accepted {
  const clientHostname = s.clientHostname && !s.clientHostname.startsWith('[') ? s.clientHostname : undefined;
  const tls = s.tls ? { enabled: true, protocol: s.tls.protocol, cipher: s.tls.cipher } : { enabled: false };
  const raw = Buffer.concat([
    ingressHeaders({
      helo: s.helo,
      clientHostname,
      clientIp: s.clientIp,
      byHost: c.hostname,
      protocol: s.protocol || 'ESMTP',
      id: c.id,
      tls: s.tls ?? undefined,
      rcptTo: s.rcptTo,
      date: c.now,
      product: c.product ?? 'mailgate',
      traceId: c.trace.traceId,
    }),
    c.auth ? c.auth.raw : stripHeaders(body),
  ]);
  const direction = directionOf(s.inbound);
  const received: PipelineMessage = {
    envelope: newEnvelope({
      id: c.id,
      receivedAt: c.now.toISOString(),
      mailFrom: s.mailFrom,
      rcptTo: [...s.rcptTo],
      size: raw.length,
      direction,
      session: {
        clientIp: s.clientIp,
        clientPort: s.clientPort,
        ...(clientHostname ? { clientHostname } : {}),
        helo: s.helo,
        tls,
        ...(s.authUser ? { authUser: s.authUser } : {}),
        trustedNetwork: s.trustedNetwork,
        ...(s.allowListed ? { ipAllowListed: true } : {}),
        listener: s.listener,
        ingressHost: c.instance,
      },
      trace: {
        traceparent: c.trace.traceparent,
        ...(c.trace.tracestate ? { tracestate: c.trace.tracestate } : {}),
        traceId: c.trace.traceId,
      },
      origin: 'smtp',
    }),
    raw,
  };
  const auth = c.auth ?? null;
  // Sender authentication decided inside the SMTP transaction: its verdict is the first one the message carries.
  const message = auth ? forward(received, auth.verdict) : received;
  const event = trackingEvent('received', message, {
    service: 'ingress-smtp',
    host: c.instance,
    at: message.envelope.receivedAt,
    details: {
      size: raw.length,
      tls,
      listener: s.listener,
      direction,
      helo: s.helo,
      ...(s.authUser ? { authUser: s.authUser } : {}),
      ...(auth ? { auth: auth.event } : {}),
      ...messageFacts(body),
    },
  });
  const record = newRecord(auth ? auth.topic : TOPICS.inbound, message, {
    trace: { ...c.trace.headers },
    // Held by ingress (DMARC p=quarantine): a release with recheck re-enters where ingress hands over.
    headers: auth?.quarantined ? { [RECORD_HEADERS.sourceTopic]: TOPICS.inbound } : {},
  });
  const records = [record, eventRecord(event)];
  if (auth?.quarantined) records.push(eventRecord(quarantinedEvent(message, auth.verdict, c.instance)));
  return { id: c.id, message, direction, size: raw.length, records };
}

/** The facts `buildAccepted` needs, read from smtp-server's session and ours. */
export function acceptedSession(
  session: SMTPServerSession,
  st: Pick<ConnState, 'listener' | 'allowListed'>,
  tx: Pick<TxState, 'mailFrom' | 'rcpts' | 'inbound'>,
  client: { readonly ip: string; readonly trusted: boolean },
): AcceptedSession {
  const cipher = session.secure && session.tlsOptions ? session.tlsOptions : null;
  return {
    listener: st.listener,
    clientIp: client.ip,
    clientPort: session.remotePort,
    clientHostname: session.clientHostname ? String(session.clientHostname) : undefined,
    helo: session.hostNameAppearsAs ? String(session.hostNameAppearsAs) : '',
    protocol: session.transmissionType,
    tls: cipher ? { protocol: cipher.version, cipher: cipher.name } : null,
    authUser: session.user ? String(session.user) : undefined,
    trustedNetwork: client.trusted,
    allowListed: st.allowListed,
    mailFrom: tx.mailFrom,
    rcptTo: tx.rcpts,
    inbound: tx.inbound,
  };
}
