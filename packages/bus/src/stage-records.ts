// What one decision of a stage produces, as records: the forwarded message (output or quarantine topic), its
// tracking events, the stage's own extra records, or the dead-letter record. Pure: the StageRunner (runner.ts)
// decides, produces these durably, and only then commits.
import {
  forward,
  newRecord,
  RECORD_HEADERS,
  TOPICS,
  trackingEvent,
  type PipelineMessage,
  type PipelineStage,
  type StageVerdict,
  type TrackingEvent,
  type TrackingEventType,
} from '@mailgate/contracts';
import type { KafkaMessage } from 'kafkajs';
import { eventRecord, type OutRecord } from './producer.js';
import type { StageOutcome } from './stage.js';

/** Where a stage's records come from and go: the stage, this instance, its input and output topics. */
export interface StageEdge {
  readonly stage: PipelineStage;
  readonly host: string;
  /** The consumed topic (named in quarantine and dead-letter records). */
  readonly topic: string;
  /** The output topic of a pass; null for the last stage. */
  readonly output: string | null;
}

/**
 * The records a decided message produces: pass → the output topic, quarantine / reject → the quarantine topic,
 * each with the stage verdict appended and the trace carried (`traceHeaders`); then the tracking events (`stage`,
 * `quarantined`, the stage's own) and the stage's extra records.
 */
export function outcomeRecords(
  edge: StageEdge,
  msg: PipelineMessage,
  outcome: StageOutcome,
  durationMs: number,
  traceHeaders: Record<string, string>,
): OutRecord[] {
  const at = new Date().toISOString();
  const sv: StageVerdict = {
    stage: edge.stage,
    verdict: outcome.verdict,
    at,
    durationMs,
    host: edge.host,
    ...(outcome.details ? { details: outcome.details } : {}),
    ...(outcome.failedOpen ? { failedOpen: true } : {}),
  };
  const fwd = forward(msg, sv, outcome.raw ?? msg.raw);
  const out: OutRecord[] = [];
  const v = outcome.verdict;
  if (v.kind === 'pass') {
    if (edge.output) out.push(newRecord(edge.output, fwd, { trace: traceHeaders }));
  } else {
    out.push(
      newRecord(TOPICS.quarantine, fwd, {
        trace: traceHeaders,
        headers: { [RECORD_HEADERS.sourceTopic]: edge.topic },
      }),
    );
  }
  const event = (type: TrackingEventType, details: Record<string, unknown>) =>
    trackingEvent(type, msg, { service: edge.stage, host: edge.host, at, details });
  const events: TrackingEvent[] = [
    event('stage', { stage: edge.stage, verdict: v, durationMs, ...(outcome.details ?? {}) }),
  ];
  if (v.kind === 'quarantine' || v.kind === 'reject') {
    events.push(event('quarantined', { stage: edge.stage, verdict: v }));
  }
  for (const e of outcome.events ?? []) {
    events.push({ ...trackingEvent(e.type, msg, { service: edge.stage, host: edge.host, at }), ...e });
  }
  out.push(...events.map(eventRecord));
  out.push(...(outcome.extraRecords ?? []));
  return out;
}

/**
 * The dead-letter record of `m` (its key, value and headers as read, plus the source topic and the error) and,
 * when the message could be decoded, its `dead-lettered` tracking event.
 */
export function deadLetterRecords(
  edge: StageEdge,
  m: KafkaMessage,
  err: Error,
  msg: PipelineMessage | undefined,
): OutRecord[] {
  const headers: Record<string, string | Buffer> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    const one = Array.isArray(v) ? v[0] : v;
    if (one !== undefined) headers[k] = one;
  }
  headers[RECORD_HEADERS.sourceTopic] = edge.topic;
  headers[RECORD_HEADERS.error] = `${err.name}: ${err.message}`.slice(0, 2000);
  const out: OutRecord[] = [
    { topic: TOPICS.deadLetter, key: m.key?.toString() ?? null, value: m.value ?? Buffer.alloc(0), headers },
  ];
  if (msg) {
    out.push(
      eventRecord(
        trackingEvent('dead-lettered', msg, {
          service: edge.stage,
          host: edge.host,
          details: { stage: edge.stage, error: err.message },
        }),
      ),
    );
  }
  return out;
}
