import type { Admin } from 'kafkajs';
import { AUX_GROUPS, PIPELINE_STAGES, STAGE_GRAPH, TOPICS } from '@mailgate/contracts';

export interface PartitionStats {
  readonly partition: number;
  /** Next offset to be written. */
  readonly high: number;
  /** Where the group will read next (its committed offset, or the log start when it has none yet). */
  readonly committed: number;
  readonly lag: number;
}

export interface StageStats {
  /** A pipeline stage, or one of the admin's own consumers (`admin-events`, `admin-quarantine`). */
  readonly stage: string;
  readonly topic: string;
  readonly group: string;
  /** Records produced to the stage's input topic, all partitions. */
  readonly produced: number;
  /** Records the stage's group has committed past. */
  readonly committed: number;
  readonly lag: number;
  /** Committed records per second since the previous sample (null on the first). */
  readonly ratePerSec: number | null;
  readonly partitions: PartitionStats[];
}

const CONSUMERS: { stage: string; topic: string; group: string }[] = [
  ...PIPELINE_STAGES.flatMap((stage) => {
    const { consumes: topic, group } = STAGE_GRAPH[stage];
    return topic && group ? [{ stage, topic, group }] : [];
  }),
  { stage: 'admin-events', topic: TOPICS.events, group: AUX_GROUPS.adminEvents },
  { stage: 'admin-quarantine', topic: TOPICS.quarantine, group: AUX_GROUPS.adminQuarantine },
];

/**
 * Per-stage lag and throughput from Kafka offsets (what KEDA scales on, seen by a human). Samples are cached for
 * `minIntervalMs` so the console's auto-refresh, API clients and Prometheus scrapes together cost the broker
 * at most one round of offset requests per interval.
 */
export class PipelineStats {
  private last = new Map<string, { at: number; committed: number }>();
  private cached: { at: number; value: Promise<StageStats[]> } | null = null;

  constructor(
    private readonly admin: Admin,
    private readonly minIntervalMs = 2000,
  ) {}

  sample(): Promise<StageStats[]> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.minIntervalMs) return this.cached.value;
    const value = this.fetch(now);
    this.cached = { at: now, value };
    value.catch(() => (this.cached = null)); // do not cache a failure
    return value;
  }

  private async fetch(now: number): Promise<StageStats[]> {
    const out: StageStats[] = [];
    const existing = new Set(await this.admin.listTopics());
    for (const { stage, topic, group } of CONSUMERS) {
      if (!existing.has(topic)) continue;
      const [highs, [committedTopic]] = await Promise.all([
        this.admin.fetchTopicOffsets(topic),
        this.admin.fetchOffsets({ groupId: group, topics: [topic] }),
      ]);
      const committedBy = new Map((committedTopic?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
      const partitions = highs
        .map((h) => {
          const high = Number(h.high);
          const low = Number(h.low);
          const c = committedBy.get(h.partition) ?? -1;
          // -1 = no commit yet: the group starts at the log start (fromBeginning), not at 0 of a truncated log.
          const committed = Math.min(high, Math.max(low, c));
          return { partition: h.partition, high, committed, lag: high - committed };
        })
        .sort((a, b) => a.partition - b.partition);
      const produced = partitions.reduce((s, p) => s + p.high, 0);
      const committed = partitions.reduce((s, p) => s + p.committed, 0);
      const lag = partitions.reduce((s, p) => s + p.lag, 0);
      const prev = this.last.get(stage);
      const ratePerSec =
        prev && now > prev.at ? Math.max(0, ((committed - prev.committed) * 1000) / (now - prev.at)) : null;
      this.last.set(stage, { at: now, committed });
      out.push({ stage, topic, group, produced, committed, lag, ratePerSec, partitions });
    }
    return out;
  }
}
