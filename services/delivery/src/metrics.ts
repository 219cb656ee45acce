import type { Meter } from '@opentelemetry/api';
import type { Logger } from '@mailgate/runtime';
import { scrapeGauges } from '@mailgate/telemetry';
import type { RecipientResult } from './deliver.js';
import type { RetryStore } from '@mailgate/delivery-queue';

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
  const MAX_SCAN = 100_000;
  const stopGauges = scrapeGauges(
    meter,
    {
      mailgate_delivery_deferred_messages: 'Messages in the deferred (retry) queue',
      mailgate_delivery_deferred_oldest_age_seconds:
        'Age since acceptance of the oldest message in the deferred queue (0 when empty)',
    },
    async (report) => {
      const n = await store.count();
      report('mailgate_delivery_deferred_messages', n);
      let min = Infinity;
      for (let off = 0; off < Math.min(n, MAX_SCAN); off += 5000) {
        for (const e of await store.list(off, 5000)) {
          const t = idTime(e.id);
          if (t !== null && t < min) min = t;
        }
      }
      report(
        'mailgate_delivery_deferred_oldest_age_seconds',
        Number.isFinite(min) ? Math.max(0, (Date.now() - min) / 1000) : 0,
      );
    },
    { log, unavailable: 'deferred queue metrics unavailable' },
  );
  return {
    count(results: readonly RecipientResult[]): void {
      for (const x of results) {
        if (x.alreadyDelivered) continue;
        outcomes.add(1, { result: RESULT[x.status] ?? x.status, class: replyClass(x.reply) });
      }
    },
    stop: stopGauges,
  };
}

/** delivery's own metrics (the runner already counts verdicts and retries per stage). */
export interface DeliveryMetrics {
  /** Recipients resent after their pending mark expired with the earlier attempt's outcome unknown. */
  possibleDuplicates(n: number, destination: string): void;
  /** Remote 250s whose delivered record could not be written to Redis at once (kept in the outcome journal). */
  outcomeJournaled(n: number): void;
  /** Reports the number of delivered records waiting in the journal for Redis. */
  observeJournalBacklog(fn: () => number): void;
}

export function createDeliveryMetrics(meter: Meter): DeliveryMetrics {
  const dups = meter.createCounter('mailgate_delivery_possible_duplicates_total', {
    description:
      'Recipients sent again after a pending mark expired without a known outcome (RFC 1047 case: may be a duplicate)',
  });
  const journaled = meter.createCounter('mailgate_delivery_outcome_journaled_total', {
    description: 'Recipients whose remote 250 was journaled locally because Redis could not record it at once',
  });
  const backlog = meter.createObservableGauge('mailgate_delivery_outcome_journal_backlog', {
    description: 'Delivered records (recipients) waiting in the local outcome journal for Redis',
  });
  return {
    possibleDuplicates: (n, destination) => dups.add(n, { destination }),
    outcomeJournaled: (n) => journaled.add(n),
    observeJournalBacklog: (fn) => backlog.addCallback((r) => r.observe(fn())),
  };
}

/** Counts in memory: for tests and tools without a meter. */
export function countingMetrics(): DeliveryMetrics & { duplicates: number; journaled: number } {
  const m = {
    duplicates: 0,
    journaled: 0,
    possibleDuplicates: (n: number) => void (m.duplicates += n),
    outcomeJournaled: (n: number) => void (m.journaled += n),
    observeJournalBacklog: () => undefined,
  };
  return m;
}
