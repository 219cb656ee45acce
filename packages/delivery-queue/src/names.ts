/**
 * The names delivery and the tools that operate its deferred queue (admin API, `mailgate queue`) must agree on.
 * Redis keys of the stored messages are in retry-store.ts.
 */

/** Default bullmq queue of retry jobs (`delivery.retry.queue`; keys `<redis.keyPrefix><queue>:…`). */
export const RETRY_QUEUE = 'delivery-retry';

/** The name of every retry job (one job per deferred message, job id = message id). */
export const RETRY_JOB = 'retry';

/** A retry job's data: the id of the message in the retry store. */
export interface RetryJobData {
  readonly id: string;
}

/** bullmq wants its own prefix without the trailing ':' that ioredis prefixes carry. */
export const bullPrefix = (keyPrefix: string) => keyPrefix.replace(/:$/, '') || 'mailgate';
