import { eventRecord, type DurableProducer } from '@mailgate/bus';
import { MailgateError } from '@mailgate/runtime';
import type { RetryScheduler } from './retry-queue.js';
import type { RetryStore } from './retry-store.js';
import { dsnFor, eventsFor } from './bounce.js';

/** A deferred message as administrators see it (CLI `mailgate queue list`, admin API). */
export interface DeferredMessage {
  readonly id: string;
  readonly mailFrom: string;
  readonly receivedAt: string;
  readonly size: number;
  /** Recipients still pending, each with its last reply. */
  readonly recipients: { readonly rcpt: string; readonly lastReply: string }[];
  readonly firstAttemptAt: string;
  readonly attempts: number;
  /** null while held. */
  readonly nextAttemptAt: string | null;
  readonly lastError: string;
  readonly held: boolean;
  /** bullmq job state (delayed, waiting, active…) or null when no job exists (held, or the reconciler will add it). */
  readonly jobState: string | null;
  readonly traceId: string;
}

export class NotQueuedError extends MailgateError {
  override readonly name = 'NotQueuedError';
  constructor(id: string) {
    super(`message ${id} is not in the delivery queue`, { code: 550, status: '5.0.0' }, 404);
  }
}

export class BusyError extends MailgateError {
  override readonly name = 'BusyError';
  constructor(id: string) {
    super(`message ${id} is being delivered right now; try again in a moment`, { code: 451, status: '4.3.0' }, 409);
  }
}

export interface QueueOpsDeps {
  readonly store: RetryStore;
  readonly scheduler: RetryScheduler;
  /** Needed only for delete with DSN (the bounce is produced to the pipeline) and for the `deleted` event. */
  readonly producer?: Pick<DurableProducer, 'send'> | undefined;
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  readonly instance: string;
}

/**
 * Queue operations on deferred mail. Plain functions of the retry store and the bullmq queue, so the CLI and the
 * admin API wrap the same code. Every operation names a message by its gateway id.
 */
export class DeliveryQueueOps {
  constructor(private readonly deps: QueueOpsDeps) {}

  async get(id: string): Promise<DeferredMessage | null> {
    const e = await this.deps.store.load(id);
    if (!e) return null;
    return {
      id,
      mailFrom: e.envelope.mailFrom,
      receivedAt: e.envelope.receivedAt,
      size: e.envelope.size,
      recipients: [...e.pending].map(([rcpt, lastReply]) => ({ rcpt, lastReply })),
      firstAttemptAt: new Date(e.firstAttemptAt).toISOString(),
      attempts: e.attempts,
      nextAttemptAt: e.held ? null : new Date(e.nextAttemptAt).toISOString(),
      lastError: e.lastError,
      held: e.held,
      jobState: await this.deps.scheduler.state(id),
      traceId: e.envelope.trace.traceId,
    };
  }

  /** Deferred messages by next attempt (soonest first). */
  async list(opts: { offset?: number; limit?: number } = {}): Promise<{ total: number; items: DeferredMessage[] }> {
    const ids = await this.deps.store.list(opts.offset ?? 0, Math.min(opts.limit ?? 100, 1000));
    const items = (await Promise.all(ids.map((i) => this.get(i.id)))).filter((x): x is DeferredMessage => x !== null);
    return { total: await this.deps.store.count(), items };
  }

  /** Attempt now (also releases a held message). 'running' when an attempt is in progress already. */
  async retryNow(id: string): Promise<'scheduled' | 'running'> {
    const e = await this.deps.store.load(id);
    if (!e) throw new NotQueuedError(id);
    if (e.held) await this.deps.store.setField(id, 'held', false);
    await this.deps.store.setNext(id, Date.now());
    return (await this.deps.scheduler.runNow(id)) ? 'scheduled' : 'running';
  }

  /** Stop retrying until released (the message stays stored; give-up time still counts from the first attempt). */
  async hold(id: string): Promise<void> {
    if (!(await this.deps.store.exists(id))) throw new NotQueuedError(id);
    await this.deps.store.setField(id, 'held', true);
    // An attempt running right now finishes and then sees the flag (no reschedule).
    await this.deps.scheduler.unschedule(id);
  }

  async release(id: string): Promise<void> {
    const e = await this.deps.store.load(id);
    if (!e) throw new NotQueuedError(id);
    await this.deps.store.setField(id, 'held', false);
    await this.deps.scheduler.schedule(id, Math.max(Date.now(), e.nextAttemptAt));
  }

  /**
   * Remove a message from the queue. With `dsn: true` the sender gets a bounce for every pending recipient
   * ("deleted by the administrator"); silently otherwise. Either way a `deleted` tracking event is written when a
   * producer is available.
   */
  async delete(id: string, opts: { dsn: boolean; by?: string }): Promise<{ dsnId: string | null }> {
    const e = await this.deps.store.load(id);
    if (!e) throw new NotQueuedError(id);
    if (opts.dsn && !this.deps.producer) throw new Error('delete with DSN needs a Kafka producer');
    if (!(await this.deps.scheduler.unschedule(id))) throw new BusyError(id);
    const raw = (await this.deps.store.loadRaw(id)) ?? Buffer.alloc(0);
    const msg = { envelope: e.envelope, raw };
    const records = [];
    let dsnId: string | null = null;
    if (opts.dsn) {
      const reply = `550 5.7.0 message deleted from the queue by the administrator${opts.by ? ` (${opts.by})` : ''}; last error: ${e.lastError}`;
      const dsn = dsnFor(
        msg,
        [...e.pending.keys()].map((rcpt) => ({ rcpt, reply })),
        'failed',
        {
          reportingMta: this.deps.reportingMta,
          postmaster: this.deps.postmaster,
          instance: this.deps.instance,
          traceparent: e.envelope.trace.traceparent,
        },
      );
      if (dsn) {
        records.push(dsn.record);
        dsnId = dsn.id;
      }
    }
    if (this.deps.producer) {
      const ev = eventsFor(
        msg,
        [
          {
            type: 'deleted',
            rcptTo: [...e.pending.keys()],
            details: { by: opts.by ?? 'admin', dsn: dsnId, from: 'delivery-queue' },
          },
        ],
        this.deps.instance,
      );
      await this.deps.producer.send([...records, ...ev.map(eventRecord)]);
    }
    await this.deps.store.remove(id);
    return { dsnId };
  }
}
