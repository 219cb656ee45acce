import type { OutRecord } from '@mailgate/bus';
import type { PipelineMessage, TrackingEvent } from '@mailgate/contracts';
import type { RecipientResult } from './deliver.js';
import { buildDsn, dsnRecord, type DsnRecipient } from './dsn.js';

export type EventPart = Omit<TrackingEvent, 'service' | 'host' | 'at' | 'messageId' | 'traceId'>;

export interface DsnContext {
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  readonly instance: string;
  readonly traceparent: string;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) {
    const k = key(i);
    let l = m.get(k);
    if (!l) m.set(k, (l = []));
    l.push(i);
  }
  return m;
}

/**
 * Tracking events for one attempt: `delivered` per answering server (with its reply), `deferred` per destination
 * (reason and next attempt), `bounced` per destination (reply, and the DSN id or why there is none).
 */
export function attemptEvents(
  results: readonly RecipientResult[],
  o: { attempt: number; nextAttemptAt?: number | undefined; dsnId?: string | null; giveUp?: boolean },
): EventPart[] {
  const events: EventPart[] = [];
  const fresh = results.filter((r) => !r.alreadyDelivered);
  for (const [host, rs] of groupBy(
    fresh.filter((r) => r.status === 'delivered'),
    (r) => r.remoteHost ?? '',
  )) {
    events.push({
      type: 'delivered',
      rcptTo: rs.map((r) => r.rcpt),
      details: { remoteHost: host, reply: rs[0]!.reply, destination: rs[0]!.destination, attempt: o.attempt },
    });
  }
  for (const [dest, rs] of groupBy(
    fresh.filter((r) => r.status === 'deferred'),
    (r) => r.destination,
  )) {
    events.push({
      type: 'deferred',
      rcptTo: rs.map((r) => r.rcpt),
      details: {
        destination: dest,
        reason: rs[0]!.reply,
        remoteHost: rs[0]!.remoteHost ?? null,
        attempt: o.attempt,
        nextAttemptAt: o.nextAttemptAt ? new Date(o.nextAttemptAt).toISOString() : null,
      },
    });
  }
  for (const [dest, rs] of groupBy(
    fresh.filter((r) => r.status === 'failed'),
    (r) => r.destination,
  )) {
    events.push({
      type: 'bounced',
      rcptTo: rs.map((r) => r.rcpt),
      details: {
        destination: dest,
        replies: Object.fromEntries(rs.map((r) => [r.rcpt, r.reply])),
        remoteHost: rs[0]!.remoteHost ?? null,
        attempt: o.attempt,
        giveUp: o.giveUp ?? false,
        dsn: o.dsnId ?? null,
      },
    });
  }
  return events;
}

/**
 * The DSN for failed (or, `kind: 'delayed'`, still deferred) recipients with its `dsn-generated` event, or null
 * when none is due: no recipients, or the sender is `<>` (never bounce a bounce — RFC 5321 §4.5.5).
 */
export function dsnFor(
  msg: PipelineMessage,
  failed: readonly DsnRecipient[],
  kind: 'failed' | 'delayed',
  ctx: DsnContext,
): { record: OutRecord; id: string; event: EventPart } | null {
  if (failed.length === 0 || msg.envelope.mailFrom === '' || msg.envelope.origin === 'dsn') return null;
  const dsn = buildDsn({ original: msg, kind, recipients: failed, ...ctx });
  const id = dsn.envelope.id;
  return {
    record: dsnRecord(dsn),
    id,
    event: {
      type: 'dsn-generated',
      rcptTo: [msg.envelope.mailFrom],
      details: { dsnId: id, kind, recipients: failed.map((f) => f.rcpt) },
    },
  };
}
