// What one decision of a stage produces, as records: the forwarded message (output or quarantine topic), its
// tracking events, the stage's own extra records, or the dead-letter record. Pure: the StageRunner (runner.ts)
// decides, produces these durably, and only then commits. The forwarded message and the events are built apart
// because in a stage chain a pass hands the forwarded message to the next step in memory (only the last step's
// forward record is produced) while every step's events are produced.
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

/** A decision of one stage applied to its message: the forwarded message (verdict appended) and when. */
export interface Decided {
  /** The message with this stage's envelope verdict appended (and its replacement bytes, if any). */
  readonly fwd: PipelineMessage;
  readonly at: string;
}

/** The forwarded message of a decision: `msg` with the stage's verdict appended, `outcome.raw` if it rewrote it. */
export function decidedMessage(
  edge: StageEdge,
  msg: PipelineMessage,
  outcome: StageOutcome,
  durationMs: number,
): Decided {
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
  return { fwd: forward(msg, sv, outcome.raw ?? msg.raw), at };
}

/**
 * Where a decided message goes: pass → the output topic (none for the last stage), quarantine / reject → the
 * quarantine topic, naming `edge.topic` as its source (where "release with recheck" re-enters); the trace carried.
 */
export function forwardRecord(
  edge: StageEdge,
  decided: Decided,
  outcome: StageOutcome,
  traceHeaders: Record<string, string>,
): OutRecord | undefined {
  if (outcome.verdict.kind === 'pass') {
    return edge.output ? newRecord(edge.output, decided.fwd, { trace: traceHeaders }) : undefined;
  }
  return newRecord(TOPICS.quarantine, decided.fwd, {
    trace: traceHeaders,
    headers: { [RECORD_HEADERS.sourceTopic]: edge.topic },
  });
}

/** The tracking events of a decision (`stage`, `quarantined`, the stage's own) and the stage's extra records. */
export function decisionRecords(
  edge: StageEdge,
  msg: PipelineMessage,
  outcome: StageOutcome,
  durationMs: number,
  at: string,
): OutRecord[] {
  const v = outcome.verdict;
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
  return [...events.map(eventRecord), ...(outcome.extraRecords ?? [])];
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
