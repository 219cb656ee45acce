import {
  forward,
  inputTopicOf,
  isPipelineStage,
  newRecord,
  nextStage,
  TOPICS,
  trackingEvent,
} from '@mailgate/contracts';
import type { DurableProducer } from '@mailgate/bus';
import { MailgateError } from '@mailgate/runtime';
import { contextFromTraceparent, injectTraceHeaders } from '@mailgate/telemetry';
import { SpanKind, trace, type Tracer } from '@opentelemetry/api';
import type { QuarantineStore } from './quarantine-store.js';

export class NotFoundError extends MailgateError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super(message, { code: 550, status: '5.0.0' }, 404);
  }
}

/** Another release/delete of the same message is in progress, or the message cannot be released. */
export class ConflictError extends MailgateError {
  override readonly name = 'ConflictError';
  constructor(message: string) {
    super(message, { code: 451, status: '4.3.0' }, 409);
  }
}

export interface ReleaseResult {
  readonly id: string;
  readonly topic: string;
  readonly recheck: boolean;
}

export interface ActionOptions {
  readonly by: string;
  readonly host: string;
  /** The admin's tracer: the action becomes a span in the message's trace. */
  readonly tracer?: Tracer;
}

const tracerOf = (o: ActionOptions) => o.tracer ?? trace.getTracer('admin');

/**
 * Release a quarantined message back into the pipeline:
 *  - recheck=true:  to the input of the stage that quarantined it (that check runs again — an infected message is
 *                   quarantined again; useful after a policy or signature change);
 *  - recheck=false: "release as is", to the input of the stage after it (the remaining checks still run).
 * The message keeps its id and trace (the release is a span of it), gets an `admin` verdict recording who
 * released it, and leaves the store only after the record is durably produced (no loss: a failed produce leaves
 * it in quarantine).
 */
export async function releaseFromQuarantine(
  store: QuarantineStore,
  producer: DurableProducer,
  id: string,
  opts: ActionOptions & { recheck: boolean },
): Promise<ReleaseResult> {
  const unclaim = await store.claim(id);
  if (!unclaim) throw new ConflictError(`message ${id} is being released or deleted right now`);
  try {
    const entry = await store.get(id);
    const msg = await store.message(id);
    if (!entry || !msg) throw new NotFoundError(`no quarantined message ${id}`);
    if (entry.kind === 'undecodable') {
      throw new ConflictError(
        `message ${id} is not a readable mailgate record and cannot be released; download or delete it`,
      );
    }
    const stage = entry.stage;
    let topic: string;
    if (opts.recheck) topic = entry.sourceTopic || (isPipelineStage(stage) ? inputTopicOf(stage) : TOPICS.inbound);
    else {
      const next = isPipelineStage(stage) ? nextStage(stage) : null;
      topic = next ? inputTopicOf(next) : TOPICS.deliverable;
    }
    const parent = contextFromTraceparent(msg.envelope.trace.traceparent, msg.envelope.trace.tracestate);
    const span = tracerOf(opts).startSpan(
      'admin release',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'mailgate.service': 'admin',
          'mailgate.message_id': id,
          'mailgate.admin.action': opts.recheck ? 'release-recheck' : 'release-as-is',
          'mailgate.admin.by': opts.by,
          'mailgate.release.from_stage': stage,
          'messaging.system': 'kafka',
          'messaging.destination.name': topic,
        },
      },
      parent,
    );
    try {
      const at = new Date().toISOString();
      const released = forward(
        {
          envelope: {
            ...msg.envelope,
            origin: 'release',
            release: { by: opts.by, at, fromStage: stage, recheck: opts.recheck },
          },
          raw: msg.raw,
        },
        {
          stage: 'admin',
          verdict: { kind: 'pass' },
          at,
          durationMs: 0,
          host: opts.host,
          details: { action: opts.recheck ? 'release-recheck' : 'release-as-is', by: opts.by, fromStage: stage },
        },
      );
      const event = trackingEvent('released', released, {
        service: 'admin',
        host: opts.host,
        at,
        details: { by: opts.by, recheck: opts.recheck, fromStage: stage, topic },
      });
      // The next stage's span is a child of this release span (same trace as the original message).
      await producer.send([newRecord(topic, released, { trace: injectTraceHeaders(trace.setSpan(parent, span)) })]);
      await producer.sendEvents([event]);
      await store.remove(id, released.envelope.verdicts.length);
      return { id, topic, recheck: opts.recheck };
    } catch (err) {
      span.recordException(err as Error);
      throw err;
    } finally {
      span.end();
    }
  } finally {
    await unclaim();
  }
}

export async function deleteFromQuarantine(
  store: QuarantineStore,
  producer: DurableProducer,
  id: string,
  opts: ActionOptions,
): Promise<void> {
  const unclaim = await store.claim(id);
  if (!unclaim) throw new ConflictError(`message ${id} is being released or deleted right now`);
  try {
    const entry = await store.get(id);
    if (!entry) throw new NotFoundError(`no quarantined message ${id}`);
    const parent = contextFromTraceparent(entry.envelope.trace.traceparent, entry.envelope.trace.tracestate);
    const span = tracerOf(opts).startSpan(
      'admin delete',
      {
        attributes: {
          'mailgate.service': 'admin',
          'mailgate.message_id': id,
          'mailgate.admin.action': 'delete',
          'mailgate.admin.by': opts.by,
        },
      },
      parent,
    );
    try {
      await producer.sendEvents([
        trackingEvent('deleted', entry, {
          service: 'admin',
          host: opts.host,
          details: { by: opts.by, from: 'quarantine', reason: entry.reason },
        }),
      ]);
      await store.remove(id, entry.envelope.verdicts.length);
    } finally {
      span.end();
    }
  } finally {
    await unclaim();
  }
}
