import { Queue, type ConnectionOptions } from 'bullmq';
import { withTimeout } from '@mailgate/runtime';
import { RETRY_JOB, type RetryJobData } from './names.js';

export interface RetrySchedule {
  readonly initialMs: number;
  readonly factor: number;
  readonly maxMs: number;
  readonly giveUpAfterMs: number;
}

/**
 * When to try next after `attempts` attempts (1 = only the first one was made). Postfix-like: initialMs, times
 * factor each time, capped at maxMs, and never later than the give-up moment (so giving up happens on time).
 */
export function nextAttemptAt(s: RetrySchedule, attempts: number, firstAttemptAt: number, now = Date.now()): number {
  const delay = Math.min(s.maxMs, s.initialMs * Math.pow(s.factor, Math.max(0, attempts - 1)));
  return Math.min(now + delay, Math.max(now, firstAttemptAt + s.giveUpAfterMs));
}

/**
 * The retry schedule as bullmq delayed jobs, one per message (job id = message id, so scheduling twice is a
 * no-op). The jobs live in Redis: a restart of delivery (or of Redis with AOF) keeps every scheduled retry.
 */
export class RetryScheduler {
  readonly queue: Queue<RetryJobData>;

  constructor(connection: ConnectionOptions, name: string, prefix: string) {
    this.queue = new Queue<RetryJobData>(name, { connection, prefix });
  }

  /** Make sure a retry job exists for `id` (at `at`, or now when at is past). Idempotent. */
  async schedule(id: string, at: number): Promise<void> {
    await this.queue.add(
      RETRY_JOB,
      { id },
      {
        jobId: id,
        delay: Math.max(0, at - Date.now()),
        removeOnComplete: true,
        removeOnFail: true,
        // A processor error (Redis or Kafka briefly down while recording the attempt) retries the job rather
        // than dropping it; the retry store still holds the message either way (see the reconciler).
        attempts: 1000,
        backoff: { type: 'fixed', delay: 30_000 },
      },
    );
  }

  /** The job's state, or null when there is no job for `id`. */
  async state(id: string): Promise<string | null> {
    const job = await this.queue.getJob(id);
    if (!job) return null;
    return job.getState();
  }

  /**
   * The job's state and, when delayed, the time (ms) BullMQ will run it; null when there is no job for `id`. BullMQ
   * scores its delayed set as time × 0x1000 + a sequence number.
   */
  async status(id: string): Promise<{ state: string; dueAt?: number } | null> {
    const job = await this.queue.getJob(id);
    if (!job) return null;
    const state = await job.getState();
    if (state !== 'delayed') return { state };
    const score = await (await this.queue.client).zscore(this.queue.keys['delayed']!, id);
    return score === null ? { state } : { state, dueAt: Math.floor(Number(score) / 0x1000) };
  }

  /** Run the retry now: promote a delayed job, or create one. False if the job is running right now. */
  async runNow(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) {
      await this.schedule(id, 0);
      return true;
    }
    const state = await job.getState();
    if (state === 'delayed') {
      await job.promote();
      return true;
    }
    if (state === 'active') return false;
    if (state === 'waiting' || state === 'prioritized') return true;
    await job.remove().catch(() => undefined);
    await this.schedule(id, 0);
    return true;
  }

  /** Remove the job (hold, delete). False when it is running (the attempt in progress finishes). */
  async unschedule(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return true;
    try {
      await job.remove();
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves once BullMQ finished connecting (closing earlier leaves its start-up commands to reject unhandled). */
  async ready(): Promise<void> {
    await this.queue.waitUntilReady();
  }

  /** Closes the queue, waiting at most `timeoutMs`: with Redis away BullMQ's close waits for it (its connection's
   * commands are retried for as long as Redis is away); the caller then closes the connection itself. */
  async close(timeoutMs = 2000): Promise<void> {
    await withTimeout(this.queue.close(), timeoutMs, 'queue close').catch(() => undefined);
  }
}
