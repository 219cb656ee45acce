import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 keeps a 1 ms timer loop running on every broker connection, forever (tulios/kafkajs#1556, fix
 * proposed in #1667 and never released): `RequestQueue.scheduleCheckPendingRequests` arms a timer even when no
 * request is pending, with a negative delay (`throttledUntil` is -1 when nothing is throttled), and the timer's
 * callback calls it again. Each of our processes holds 3–5 connections (producer, consumer, group coordinator,
 * admin), so an idle stage spent ~45 ms of CPU per second (4.5 % of a core) in that loop, and a busy one paid it
 * on top of its work — a fixed cost per replica that made replicas with a CPU quota scale sub-linearly
 * (docs/benchmarks.md, issue 22).
 *
 * The fix is the one proposed upstream: arm the timer only while requests wait in the pending queue. Nothing else
 * needs it: a request enters the queue only through `push`, which schedules the check, and every fulfilled or
 * timed-out in-flight request runs `checkPendingRequests` itself.
 *
 * The class is kafkajs-internal, so the patch checks what it replaces: it is applied only when the method is the
 * known one (its source names `throttledUntil - Date.now()` and no pending-queue guard comes first). A kafkajs
 * upgrade that changes it leaves it alone and `installRequestQueueFix` returns false (the service logs a warning;
 * packages/bus/test/request-queue-fix.test.ts fails, so an upgrade is noticed).
 */
const require = createRequire(import.meta.url);
const QUEUE_MODULE = 'kafkajs/src/network/requestQueue/index.js';
/** kafkajs' own interval for a pending request whose throttle already ended (CHECK_PENDING_REQUESTS_INTERVAL). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

const FIXED = Symbol.for('mailgate.kafkajs.requestQueueFix');

function scheduleCheckPendingRequests(this: RequestQueueLike): void {
  // Nothing waits: no timer. (Upstream arms one anyway, with a negative delay, and loops every millisecond.)
  if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    },
    untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS,
  );
}
Object.defineProperty(scheduleCheckPendingRequests, FIXED, { value: true });

function requestQueueClass(): { prototype: RequestQueueLike } | undefined {
  try {
    return require(QUEUE_MODULE) as { prototype: RequestQueueLike };
  } catch {
    return undefined;
  }
}

/** Replaces kafkajs' busy-looping `scheduleCheckPendingRequests`; true when the fix is in place (idempotent). */
export function installRequestQueueFix(): boolean {
  const proto = requestQueueClass()?.prototype;
  if (!proto || typeof proto.scheduleCheckPendingRequests !== 'function') return false;
  if (requestQueueFixed()) return true;
  const src = proto.scheduleCheckPendingRequests.toString();
  if (!src.includes('this.throttledUntil - Date.now()') || !src.includes('this.pending.length > 0')) return false;
  proto.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  return true;
}

/** kafkajs' request queues use the fixed scheduler. */
export function requestQueueFixed(): boolean {
  const fn = requestQueueClass()?.prototype.scheduleCheckPendingRequests as unknown as Record<symbol, unknown>;
  return !!fn && fn[FIXED] === true;
}
