import type { OutRecord } from '@mailgate/bus';
import { trackingEvent, type PipelineMessage, type TrackingEvent } from '@mailgate/contracts';
import { buildDsn, dsnRecord, type DsnRecipient } from './dsn.js';

/** A delivery tracking event without the facts every event of the message shares (see `eventsFor`). */
export type EventPart = Omit<TrackingEvent, 'service' | 'host' | 'at' | 'messageId' | 'traceId'>;

export interface DsnContext {
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  readonly instance: string;
  readonly traceparent: string;
}

/** Delivery's tracking events for `msg`, one per part (a part may narrow rcptTo to the recipients it is about). */
export function eventsFor(msg: PipelineMessage, parts: EventPart[], instance: string): TrackingEvent[] {
  const at = new Date().toISOString();
  return parts.map((p) => ({ ...trackingEvent(p.type, msg, { service: 'delivery', host: instance, at }), ...p }));
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
