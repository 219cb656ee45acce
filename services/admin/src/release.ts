import {
  encodeMessage,
  inputTopicOf,
  isPipelineStage,
  nextStage,
  RECORD_HEADERS,
  TOPICS,
  type Envelope,
  type TrackingEvent,
} from '@mailgate/contracts';
import type { DurableProducer } from '@mailgate/bus';
import type { QuarantineStore } from './quarantine-store.js';

export class NotFoundError extends Error {
  readonly http = 404;
}

export interface ReleaseResult {
  readonly id: string;
  readonly topic: string;
  readonly recheck: boolean;
}

/**
 * Release a quarantined message back into the pipeline:
 *  - recheck=true:  to the input of the stage that quarantined it (that check runs again — an infected message is
 *                   quarantined again; useful after a policy or signature change);
 *  - recheck=false: "release as is", to the input of the stage after it (the remaining checks still run).
 * The message keeps its id and trace, gets an `admin` verdict recording who released it, and leaves the store
 * only after the record is durably produced.
 */
export async function releaseFromQuarantine(
  store: QuarantineStore,
  producer: DurableProducer,
  id: string,
  opts: { recheck: boolean; by: string; host: string },
): Promise<ReleaseResult> {
  const entry = await store.get(id);
  const msg = await store.message(id);
  if (!entry || !msg) throw new NotFoundError(`no quarantined message ${id}`);
  const stage = entry.stage;
  let topic: string;
  if (opts.recheck) topic = entry.sourceTopic || (isPipelineStage(stage) ? inputTopicOf(stage) : TOPICS.inbound);
  else {
    const next = isPipelineStage(stage) ? nextStage(stage) : null;
    topic = next ? inputTopicOf(next) : TOPICS.deliverable;
  }
  const at = new Date().toISOString();
  const envelope: Envelope = {
    ...msg.envelope,
    origin: 'release',
    release: { by: opts.by, at, fromStage: stage, recheck: opts.recheck },
    verdicts: [
      ...msg.envelope.verdicts,
      {
        stage: 'admin',
        verdict: { kind: 'pass' },
        at,
        durationMs: 0,
        host: opts.host,
        details: { action: opts.recheck ? 'release-recheck' : 'release-as-is', by: opts.by, fromStage: stage },
      },
    ],
  };
  const event: TrackingEvent = {
    type: 'released',
    messageId: id,
    traceId: envelope.trace.traceId,
    at,
    service: 'admin',
    host: opts.host,
    mailFrom: envelope.mailFrom,
    rcptTo: envelope.rcptTo,
    clientIp: envelope.session.clientIp,
    details: { by: opts.by, recheck: opts.recheck, fromStage: stage, topic },
  };
  await producer.send([
    {
      topic,
      key: id,
      value: encodeMessage({ envelope, raw: msg.raw }),
      headers: {
        [RECORD_HEADERS.traceparent]: envelope.trace.traceparent,
        [RECORD_HEADERS.messageId]: id,
        [RECORD_HEADERS.schema]: '1',
      },
    },
  ]);
  await producer.sendEvents([event]);
  await store.remove(id);
  return { id, topic, recheck: opts.recheck };
}

export async function deleteFromQuarantine(
  store: QuarantineStore,
  producer: DurableProducer,
  id: string,
  opts: { by: string; host: string },
): Promise<void> {
  const entry = await store.get(id);
  if (!entry) throw new NotFoundError(`no quarantined message ${id}`);
  await producer.sendEvents([
    {
      type: 'deleted',
      messageId: id,
      traceId: entry.envelope.trace.traceId,
      at: new Date().toISOString(),
      service: 'admin',
      host: opts.host,
      mailFrom: entry.envelope.mailFrom,
      rcptTo: entry.envelope.rcptTo,
      details: { by: opts.by, from: 'quarantine' },
    },
  ]);
  await store.remove(id);
}
