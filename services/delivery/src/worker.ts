import type { DurableProducer, OutRecord } from '@mailgate/bus';
import { eventRecord } from '@mailgate/bus';
import type { PipelineMessage } from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import { contextFromTraceparent, runInSpan, traceparentOf } from '@mailgate/telemetry';
import { SpanKind, type Tracer } from '@opentelemetry/api';
import { DelayedError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { DeliveryEngine, RecipientResult } from './deliver.js';
import {
  dsnFor,
  eventsFor,
  nextAttemptAt,
  type EventPart,
  type RetryJobData,
  type RetrySchedule,
  type RetryScheduler,
  type RetryStore,
} from '@mailgate/delivery-queue';
import { attemptEvents } from './outcome.js';

export interface RetryWorkerDeps {
  readonly engine: DeliveryEngine;
  readonly store: RetryStore;
  readonly scheduler: RetryScheduler;
  readonly producer: Pick<DurableProducer, 'send'>;
  readonly schedule: RetrySchedule;
  readonly delayDsnAfterMs?: number | undefined;
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  readonly instance: string;
  readonly tracer: Tracer;
  readonly log: Logger;
}

/**
 * One retry attempt of a stored message (what the bullmq worker runs). Returns 'done' when every recipient is
 * final, 'held', or the next attempt time. DSNs and events are produced durably BEFORE the attempt is recorded,
 * so a crash in between repeats the attempt (markers prevent a second copy) rather than losing a bounce.
 */
export async function runRetry(d: RetryWorkerDeps, id: string): Promise<'gone' | 'held' | 'done' | number> {
  const entry = await d.store.load(id);
  if (!entry) return 'gone';
  if (entry.held) return 'held';
  const raw = await d.store.loadRaw(id);
  if (!raw) {
    d.log.error({ msgId: id }, 'retry entry without raw message: removing it');
    await d.store.remove(id);
    return 'gone';
  }
  const msg: PipelineMessage = { envelope: entry.envelope, raw };
  const attempt = entry.attempts + 1;
  const parent = contextFromTraceparent(entry.envelope.trace.traceparent, entry.envelope.trace.tracestate);
  const span = d.tracer.startSpan(
    'delivery retry',
    {
      kind: SpanKind.CONSUMER,
      attributes: { 'mailgate.service': 'delivery', 'mailgate.message_id': id, 'mailgate.attempt': attempt },
    },
    parent,
  );
  return runInSpan(
    span,
    async () => {
      const results = await d.engine.deliver(msg, [...entry.pending.keys()]);
      const now = Date.now();
      const giveUp = now - entry.firstAttemptAt >= d.schedule.giveUpAfterMs;
      const failed: RecipientResult[] = results.filter((r) => r.status === 'failed');
      let deferred = results.filter((r) => r.status === 'deferred');
      if (giveUp && deferred.length > 0) {
        const age = Math.round((now - entry.firstAttemptAt) / 1000);
        for (const r of deferred) failed.push({ ...r, status: 'failed', reply: `${r.reply} (gave up after ${age} s)` });
        deferred = [];
      }
      const next = deferred.length > 0 ? nextAttemptAt(d.schedule, attempt, entry.firstAttemptAt, now) : undefined;
      const records: OutRecord[] = [];
      const parts: EventPart[] = [];
      const ctx = {
        reportingMta: d.reportingMta,
        postmaster: d.postmaster,
        instance: d.instance,
        traceparent: traceparentOf(span),
      };
      const dsn = dsnFor(msg, failed, 'failed', ctx);
      if (dsn) {
        records.push(dsn.record);
        parts.push(dsn.event);
      }
      let delayNotified = false;
      if (
        d.delayDsnAfterMs !== undefined &&
        !entry.delayNotified &&
        deferred.length > 0 &&
        now - entry.firstAttemptAt >= d.delayDsnAfterMs
      ) {
        const delay = dsnFor(msg, deferred, 'delayed', ctx);
        if (delay) {
          records.push(delay.record);
          parts.push(delay.event);
        }
        delayNotified = true;
      }
      parts.unshift(
        ...attemptEvents(
          results.map((r) => failed.find((f) => f.rcpt === r.rcpt) ?? r),
          {
            attempt,
            nextAttemptAt: next,
            dsnId: dsn?.id ?? (failed.length > 0 ? null : undefined),
            giveUp,
          },
        ),
      );
      await d.producer.send([...records, ...eventsFor(msg, parts, d.instance).map(eventRecord)]);
      if (delayNotified) await d.store.setField(id, 'delayNotified', true);
      const final = results
        .filter((r) => r.status === 'delivered')
        .map((r) => r.rcpt)
        .concat(failed.map((f) => f.rcpt));
      span.setAttributes({
        'mailgate.delivered': results.filter((r) => r.status === 'delivered').length,
        'mailgate.deferred': deferred.length,
        'mailgate.failed': failed.length,
      });
      const recorded = await d.store.recordAttempt(id, {
        final,
        pending: new Map(deferred.map((r) => [r.rcpt, r.reply])),
        nextAttemptAt: next ?? now,
        lastError: deferred[0]?.reply ?? failed[0]?.reply ?? '',
      });
      if (!recorded) return 'gone';
      if (await d.store.finishIfDone(id)) return 'done';
      const after = await d.store.load(id);
      if (!after) return 'gone';
      if (after.held) return 'held';
      return next ?? now;
    },
    parent,
  );
}

/** The bullmq Worker running retries; the same job is moved back to delayed until the message is final. */
export function startRetryWorker(
  d: RetryWorkerDeps,
  o: { connection: ConnectionOptions; queue: string; prefix: string; concurrency: number },
): Worker<RetryJobData> {
  const worker = new Worker<RetryJobData>(
    o.queue,
    async (job: Job<RetryJobData>, token?: string) => {
      const r = await runRetry(d, job.data.id);
      if (typeof r === 'number') {
        await job.moveToDelayed(Math.max(r, Date.now()), token);
        throw new DelayedError();
      }
      return r;
    },
    {
      connection: o.connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      // A replica that dies mid-attempt leaves its job "stalled"; it is retried (markers prevent duplicates).
      maxStalledCount: 1000,
      autorun: true,
    },
  );
  worker.on('failed', (job, err) =>
    d.log.warn({ msgId: job?.data.id, err: err.message }, 'retry attempt failed: will run again'),
  );
  worker.on('error', (err) => d.log.warn({ err: err.message }, 'retry worker error'));
  return worker;
}

/**
 * Re-create retry jobs for stored messages whose job is missing (a crash between storing and scheduling, or a
 * job lost some other way). Stored messages are the source of truth; jobs are just their alarm clocks.
 */
export async function reconcile(store: RetryStore, scheduler: RetryScheduler, graceMs: number): Promise<number> {
  let fixed = 0;
  for (const id of await store.overdue(Date.now() - graceMs)) {
    const state = await scheduler.state(id);
    if (state === null || state === 'completed' || state === 'failed' || state === 'unknown') {
      const e = await store.load(id);
      if (!e || e.held) continue;
      if (state !== null) await scheduler.unschedule(id);
      await scheduler.schedule(id, 0);
      fixed++;
    }
  }
  return fixed;
}
