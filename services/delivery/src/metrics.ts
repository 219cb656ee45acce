import type { Meter } from '@opentelemetry/api';
import type { Logger } from '@mailgate/runtime';
import type { RecipientResult } from './deliver.js';
import type { RetryStore } from './retry-store.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Acceptance time (ms) encoded in a gateway message id (ULID layout: 10 chars of time first). */
export function idTime(id: string): number | null {
  let t = 0;
  for (const c of id.slice(0, 10)) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) return null;
    t = t * 32 + v;
  }
  return t;
}

/** `2xx` / `4xx` / `5xx` from a reply (ours are in reply form too); `none` when it has no code. */
export const replyClass = (reply: string) => (/^[245]\d\d/.test(reply) ? `${reply[0]}xx` : 'none');

const RESULT: Record<string, string> = { delivered: 'delivered', deferred: 'deferred', failed: 'bounced' };

/**
 * Delivery metrics:
 *   mailgate_delivery_outcomes_total{result=delivered|deferred|bounced, class=2xx|4xx|5xx|none}  per recipient
 *     per attempt (a recipient deferred three times then delivered counts 3 deferred + 1 delivered)
 *   mailgate_delivery_deferred_messages                      messages waiting in the retry queue
 *   mailgate_delivery_deferred_oldest_age_seconds            age (since accepted) of the oldest waiting message
 * The gauges are read from Redis at scrape time; the queue scan is bounded (MAX_SCAN ids).
 */
export function deliveryMetrics(meter: Meter, store: RetryStore, log: Logger) {
  const outcomes = meter.createCounter('mailgate_delivery_outcomes', {
    description: 'Delivery attempt outcomes per recipient, by result and remote reply class',
  });
  const depth = meter.createObservableGauge('mailgate_delivery_deferred_messages', {
    description: 'Messages in the deferred (retry) queue',
  });
  const oldest = meter.createObservableGauge('mailgate_delivery_deferred_oldest_age_seconds', {
    description: 'Age since acceptance of the oldest message in the deferred queue (0 when empty)',
  });
  const MAX_SCAN = 100_000;
  const observe: Parameters<Meter['addBatchObservableCallback']>[0] = async (r) => {
    try {
      const n = await store.count();
      r.observe(depth, n);
      let min = Infinity;
      for (let off = 0; off < Math.min(n, MAX_SCAN); off += 5000) {
        for (const e of await store.list(off, 5000)) {
          const t = idTime(e.id);
          if (t !== null && t < min) min = t;
        }
      }
      r.observe(oldest, Number.isFinite(min) ? Math.max(0, (Date.now() - min) / 1000) : 0);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'deferred queue metrics unavailable');
    }
  };
  meter.addBatchObservableCallback(observe, [depth, oldest]);
  return {
    count(results: readonly RecipientResult[]): void {
      for (const x of results) {
        if (x.alreadyDelivered) continue;
        outcomes.add(1, { result: RESULT[x.status] ?? x.status, class: replyClass(x.reply) });
      }
    },
    stop: () => meter.removeBatchObservableCallback(observe, [depth, oldest]),
  };
}
