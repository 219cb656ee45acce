import type { Meter } from '@opentelemetry/api';
import type { Logger } from '@mailgate/runtime';
import { scrapeGauges } from '@mailgate/telemetry';
import type { QuarantineStore } from './quarantine-store.js';
import type { PipelineStats } from './stats.js';
import type { TrackingWriteError } from './tracking-store.js';

/**
 * mailgate_tracking_write_errors_total{command}: writes of the tracking store that Redis refused inside a batch's
 * transaction (the batch's other writes stand; the batch is not retried, it would fail the same way). Each is
 * logged with its key. Nonzero means lost index entries or event lines: usually a foreign key of another type under
 * the store's prefix (WRONGTYPE).
 */
export function trackingWriteErrors(meter: Meter, log: Logger): (e: TrackingWriteError) => void {
  const errors = meter.createCounter('mailgate_tracking_write_errors_total', {
    description: 'Tracking store writes Redis refused inside a batch transaction, by command',
  });
  return ({ command, key, error }) => {
    errors.add(1, { command });
    log.error({ command, key, err: error.message }, 'tracking store write failed');
  };
}

/**
 * Gauges the admin service exports on /metrics, read from Kafka offsets and Redis at scrape time:
 *   mailgate_consumer_lag{stage,topic,partition}   records not yet committed by the stage's consumer group
 *   mailgate_topic_end_offset{topic,partition}      next offset written (rate() of it = produce throughput)
 *   mailgate_consumer_committed_offset{stage,topic,partition}  (rate() = consume throughput)
 *   mailgate_quarantine_depth                       messages held in quarantine (incl. dead-lettered)
 *   mailgate_quarantine_messages{reason}            the same per reason class (quarantine-store.ts QUARANTINE_CLASSES)
 * One process per cluster should export them (the admin service); stages export their own counters.
 * A sample that fails leaves its gauges without series for that scrape (scrapeGauges). Returns the function that
 * detaches the callbacks (shutdown: the meter provider may outlive the service).
 */
export function registerGauges(
  meter: Meter,
  stats: PipelineStats,
  quarantine: QuarantineStore,
  log: Logger,
): () => void {
  const onError = (unavailable: string) => ({ log, unavailable });
  const removeStats = scrapeGauges(
    meter,
    {
      mailgate_consumer_lag: 'Records in a stage input topic partition not yet committed by the stage consumer group',
      mailgate_topic_end_offset: 'High watermark per topic partition',
      mailgate_consumer_committed_offset: 'Committed offset of the stage consumer group per partition',
    },
    async (report) => {
      for (const s of await stats.sample()) {
        for (const p of s.partitions) {
          report('mailgate_consumer_lag', p.lag, { stage: s.stage, topic: s.topic, partition: p.partition });
          report('mailgate_consumer_committed_offset', p.committed, {
            stage: s.stage,
            topic: s.topic,
            partition: p.partition,
          });
          report('mailgate_topic_end_offset', p.high, { topic: s.topic, partition: p.partition });
        }
      }
    },
    onError('pipeline stats unavailable for /metrics'),
  );
  const removeDepth = scrapeGauges(
    meter,
    {
      mailgate_quarantine_depth: 'Messages in quarantine',
      mailgate_quarantine_messages:
        'Messages in quarantine by reason class: virus, attachment, malformed, dnsbl, spam, sender-auth, dead-letter, other',
    },
    async (report) => {
      // Every class is exported, zeros included, so a spike in one shows against a flat line rather than a gap.
      for (const [reason, n] of Object.entries(await quarantine.countByClass())) {
        report('mailgate_quarantine_messages', n, { reason });
      }
      report('mailgate_quarantine_depth', await quarantine.count());
    },
    onError('quarantine depth unavailable for /metrics'),
  );
  return () => {
    removeStats();
    removeDepth();
  };
}
