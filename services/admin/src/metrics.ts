import type { Meter } from '@opentelemetry/api';
import type { Logger } from '@mailgate/runtime';
import type { QuarantineStore } from './quarantine-store.js';
import type { PipelineStats } from './stats.js';

/**
 * Gauges the admin service exports on /metrics, read from Kafka offsets and Redis at scrape time:
 *   mailgate_consumer_lag{stage,topic,partition}   records not yet committed by the stage's consumer group
 *   mailgate_topic_end_offset{topic,partition}      next offset written (rate() of it = produce throughput)
 *   mailgate_consumer_committed_offset{stage,topic,partition}  (rate() = consume throughput)
 *   mailgate_quarantine_depth                       messages held in quarantine (incl. dead-lettered)
 *   mailgate_quarantine_messages{reason}            the same per reason class (quarantine-store.ts QUARANTINE_CLASSES)
 * One process per cluster should export them (the admin service); stages export their own counters.
 * Returns the function that detaches the callbacks (shutdown: the meter provider may outlive the service).
 */
export function registerGauges(
  meter: Meter,
  stats: PipelineStats,
  quarantine: QuarantineStore,
  log: Logger,
): () => void {
  const lag = meter.createObservableGauge('mailgate_consumer_lag', {
    description: 'Records in a stage input topic partition not yet committed by the stage consumer group',
  });
  const end = meter.createObservableGauge('mailgate_topic_end_offset', {
    description: 'High watermark per topic partition',
  });
  const committed = meter.createObservableGauge('mailgate_consumer_committed_offset', {
    description: 'Committed offset of the stage consumer group per partition',
  });
  const depth = meter.createObservableGauge('mailgate_quarantine_depth', { description: 'Messages in quarantine' });
  const byReason = meter.createObservableGauge('mailgate_quarantine_messages', {
    description:
      'Messages in quarantine by reason class: virus, attachment, malformed, dnsbl, spam, sender-auth, dead-letter, other',
  });
  const onStats = async (r: Parameters<Parameters<typeof meter.addBatchObservableCallback>[0]>[0]) => {
    try {
      for (const s of await stats.sample()) {
        for (const p of s.partitions) {
          r.observe(lag, p.lag, { stage: s.stage, topic: s.topic, partition: p.partition });
          r.observe(committed, p.committed, { stage: s.stage, topic: s.topic, partition: p.partition });
          r.observe(end, p.high, { topic: s.topic, partition: p.partition });
        }
      }
    } catch (err) {
      // No sample = no series this scrape (absent() alerts catch it); never fail the whole /metrics response.
      log.warn({ err: (err as Error).message }, 'pipeline stats unavailable for /metrics');
    }
  };
  const onDepth = async (r: Parameters<Parameters<typeof meter.addBatchObservableCallback>[0]>[0]) => {
    try {
      // Every class is exported, zeros included, so a spike in one shows against a flat line rather than a gap.
      for (const [reason, n] of Object.entries(await quarantine.countByClass())) r.observe(byReason, n, { reason });
      r.observe(depth, await quarantine.count());
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'quarantine depth unavailable for /metrics');
    }
  };
  meter.addBatchObservableCallback(onStats, [lag, end, committed]);
  meter.addBatchObservableCallback(onDepth, [depth, byReason]);
  return () => {
    meter.removeBatchObservableCallback(onStats, [lag, end, committed]);
    meter.removeBatchObservableCallback(onDepth, [depth, byReason]);
  };
}
