import type { DurableProducer, OutRecord } from '@mailgate/bus';
import { eventRecord } from '@mailgate/bus';
import type { PipelineMessage } from '@mailgate/contracts';
import { closeRedis, type Logger } from '@mailgate/runtime';
import { contextFromTraceparent, runInSpan, traceparentOf } from '@mailgate/telemetry';
import { SpanKind, type Tracer } from '@opentelemetry/api';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
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

/** Options of the bullmq Worker that runs retries. */
export interface RetryWorkerOptions {
  /** A new Redis connection for each (re)created worker: a wedged worker's connection is not reused. */
  readonly connect: () => Redis;
  readonly queue: string;
  readonly prefix: string;
  readonly concurrency: number;
  /**
   * An attempt running longer than this no longer counts as occupying its slot when the watchdog asks whether the
   * worker has room (every SMTP step has its own timeout, so only a hung attempt gets there).
   */
  readonly hungAttemptMs: number;
}

/**
 * The bullmq Worker running retries (the same job is moved back to delayed until the message is final), kept
 * replaceable: BullMQ's worker can stop taking jobs after Redis restarts while the queue itself works (upstream
 * taskforcesh/bullmq #2466, #2964, #3185; the maintainer's advice is to close it and create a new one). It counts
 * the attempts it starts and times the ones running, which is what the watchdog (`RetryWorkerWatchdog`) reads.
 */
export class RetryWorker {
  private worker: Worker<RetryJobData>;
  private connection: Redis;
  private startedCount = 0;
  private readonly running = new Map<number, number>();
  private seq = 0;
  private replacedCount = 0;

  constructor(
    private readonly d: RetryWorkerDeps,
    private readonly o: RetryWorkerOptions,
  ) {
    this.connection = o.connect();
    this.worker = this.create(this.connection);
  }

  /** Attempts started since this process began (all workers it created). */
  get started(): number {
    return this.startedCount;
  }

  /** Times the worker was replaced. */
  get replaced(): number {
    return this.replacedCount;
  }

  /** The bullmq Worker in use now. */
  get current(): Worker<RetryJobData> {
    return this.worker;
  }

  /** Slots not taken by an attempt younger than hungAttemptMs. */
  freeSlots(now = Date.now()): number {
    let busy = 0;
    for (const since of this.running.values()) if (now - since < this.o.hungAttemptMs) busy++;
    return this.o.concurrency - busy;
  }

  /**
   * Close the worker and start a new one on a new connection. The old one is force-closed without waiting: a wedged
   * worker's close may never finish. Jobs it held active lose their lock and BullMQ's stalled-job check hands them
   * to the new worker; an attempt that still finishes later is harmless (per-recipient markers prevent a second copy).
   */
  replace(): void {
    const old = this.worker;
    const oldConnection = this.connection;
    this.connection = this.o.connect();
    this.worker = this.create(this.connection);
    this.replacedCount++;
    void old
      .close(true)
      .catch(() => undefined)
      .finally(() => oldConnection.disconnect());
    // If close never settles, the connection still goes.
    setTimeout(() => oldConnection.disconnect(), 5000).unref();
  }

  async close(): Promise<void> {
    await this.worker.close();
    await closeRedis(this.connection);
  }

  private create(connection: Redis): Worker<RetryJobData> {
    const d = this.d;
    const worker = new Worker<RetryJobData>(
      this.o.queue,
      async (job: Job<RetryJobData>, token?: string) => {
        const n = ++this.seq;
        this.startedCount++;
        this.running.set(n, Date.now());
        try {
          const r = await runRetry(d, job.data.id);
          if (typeof r === 'number') {
            await job.moveToDelayed(Math.max(r, Date.now()), token);
            throw new DelayedError();
          }
          return r;
        } finally {
          this.running.delete(n);
        }
      },
      {
        connection,
        prefix: this.o.prefix,
        concurrency: this.o.concurrency,
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
}

/**
 * Decides that the retry worker has stopped taking jobs: a retry job that is due (waiting, or delayed past its time)
 * and overdue by more than the grace period at two checks in a row, while the worker had a free slot and started no
 * attempt between them. Two checks, because one could land just after an operator's "retry now" made a job waiting.
 * With several replicas, a healthy one takes the due jobs, so only a replica whose worker is stuck sees them twice.
 */
export class RetryWorkerWatchdog {
  private suspects = new Set<string>();
  private startedAtLastCheck: number | undefined;

  check(dueOverdue: readonly string[], started: number, freeSlots: number): boolean {
    const seenTwice = dueOverdue.some((id) => this.suspects.has(id));
    const idle = started === this.startedAtLastCheck;
    this.suspects = new Set(dueOverdue);
    this.startedAtLastCheck = started;
    if (!(seenTwice && idle && freeSlots > 0)) return false;
    this.suspects.clear();
    return true;
  }
}

/** What one reconciler pass found. */
export interface ReconcileResult {
  /** Retry jobs re-created for stored messages that had none. */
  readonly recreated: number;
  /** Messages overdue by more than the grace period whose job is due but not running: waiting, or delayed past. */
  readonly dueOverdue: string[];
}

/**
 * Re-create retry jobs for stored messages whose job is missing (a crash between storing and scheduling, or a
 * job lost some other way), and list the ones whose job is due but has not run. Stored messages are the source of
 * truth; jobs are just their alarm clocks.
 */
export async function reconcile(
  store: RetryStore,
  scheduler: RetryScheduler,
  graceMs: number,
  now = Date.now(),
): Promise<ReconcileResult> {
  let recreated = 0;
  const dueOverdue: string[] = [];
  const before = now - graceMs;
  for (const id of await store.overdue(before)) {
    const job = await scheduler.status(id);
    const state = job?.state ?? null;
    if (state === null || state === 'completed' || state === 'failed' || state === 'unknown') {
      const e = await store.load(id);
      if (!e || e.held) continue;
      if (state !== null) await scheduler.unschedule(id);
      await scheduler.schedule(id, 0);
      recreated++;
    } else if (
      state === 'waiting' ||
      state === 'prioritized' ||
      (state === 'delayed' && job?.dueAt !== undefined && job.dueAt < before)
    ) {
      dueOverdue.push(id);
    }
  }
  return { recreated, dueOverdue };
}
