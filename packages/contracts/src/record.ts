import { encodeMessage } from './codec.js';
import { appendVerdict, ENVELOPE_SCHEMA, type Envelope, type PipelineMessage, type StageVerdict } from './envelope.js';
import type { TrackingEvent, TrackingEventType } from './events.js';
import { RECORD_HEADERS } from './headers.js';
import type { ServiceName } from './services.js';

/**
 * The one place a pipeline message becomes a Kafka record, a stage's decision is appended to it, and a tracking
 * event about it is started. Ingress, the bus runner, delivery (DSNs), admin (release) and the testkit all build
 * through these, so a new envelope or header field is added once, here.
 */

/** A Kafka record of a pipeline message (structurally a @mailgate/bus OutRecord). */
export interface PipelineRecord {
  readonly topic: string;
  /** The message id: replays and releases of one message land on one partition. */
  readonly key: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

export interface NewRecordOptions {
  /**
   * W3C trace headers of the span that produces the record (telemetry's injectTraceHeaders), so the next stage's
   * span is its child. Default: the envelope's own traceparent (generated messages, tests).
   */
  readonly trace?: Readonly<Record<string, string>>;
  /** Further record headers, e.g. RECORD_HEADERS.sourceTopic on quarantine records. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The record of `msg` on `topic`: keyed by message id, value per codec.ts, trace + id + schema headers. */
export function newRecord(topic: string, msg: PipelineMessage, opts: NewRecordOptions = {}): PipelineRecord {
  const id = msg.envelope.id;
  return {
    topic,
    key: id,
    value: encodeMessage(msg),
    headers: {
      ...(opts.trace ?? { [RECORD_HEADERS.traceparent]: msg.envelope.trace.traceparent }),
      [RECORD_HEADERS.messageId]: id,
      [RECORD_HEADERS.schema]: String(ENVELOPE_SCHEMA),
      ...opts.headers,
    },
  };
}

/**
 * The message as it leaves a stage: `verdict` appended to its verdicts. When the stage rewrote the bytes (added a
 * header) pass them as `raw`: the envelope size follows them. Without `raw` the bytes and size are unchanged.
 */
export function forward(msg: PipelineMessage, verdict: StageVerdict, raw?: Buffer): PipelineMessage {
  const envelope = appendVerdict(msg.envelope, verdict);
  if (raw === undefined) return { envelope, raw: msg.raw };
  return { envelope: { ...envelope, size: raw.length }, raw };
}

export interface TrackingEventExtra {
  readonly service: ServiceName;
  /** Instance (pod) name. */
  readonly host: string;
  /** ISO time; default now. */
  readonly at?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** A tracking event about `msg`, with the envelope facts repeated so the event is searchable alone. */
export function trackingEvent(
  type: TrackingEventType,
  msg: { readonly envelope: Envelope },
  extra: TrackingEventExtra,
): TrackingEvent {
  const e = msg.envelope;
  return {
    type,
    messageId: e.id,
    traceId: e.trace.traceId,
    at: extra.at ?? new Date().toISOString(),
    service: extra.service,
    host: extra.host,
    mailFrom: e.mailFrom,
    rcptTo: e.rcptTo,
    clientIp: e.session.clientIp,
    ...(extra.details ? { details: extra.details } : {}),
  };
}
