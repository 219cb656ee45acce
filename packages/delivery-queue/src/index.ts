export * from './names.js';
export { RetryStore, type RetryEntry } from './retry-store.js';
export { RetryScheduler, nextAttemptAt, type RetrySchedule } from './retry-queue.js';
export { buildDsn, dsnRecord, dsnMessageId, statusOf, headerBlock, type DsnInput, type DsnRecipient } from './dsn.js';
export { dsnFor, eventsFor, type DsnContext, type EventPart } from './bounce.js';
export { DeliveryQueueOps, NotQueuedError, BusyError, type DeferredMessage, type QueueOpsDeps } from './queue-ops.js';
export { deliveryQueueSchema, openDeliveryQueue, type DeliveryQueueConfig } from './open.js';
