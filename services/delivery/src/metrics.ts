import type { Meter } from '@opentelemetry/api';

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
