import type { Admin } from 'kafkajs';
import {
  AUX_GROUPS,
  chainGroup,
  chainProblem,
  isPipelineStage,
  PIPELINE_STAGES,
  STAGE_GRAPH,
  TOPICS,
  type PipelineStage,
} from '@mailgate/contracts';

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

/**
 * The stages a consumer group named like a stage chain's (`mailgate.chain.<first>..<last>`, `chainGroup`) runs, or
 * undefined for any other group.
 */
export function chainStagesOf(groupId: string): PipelineStage[] | undefined {
  const m = /^mailgate\.chain\.(.+)\.\.(.+)$/.exec(groupId);
  if (!m || !isPipelineStage(m[1]!) || !isPipelineStage(m[2]!)) return undefined;
  const stages = PIPELINE_STAGES.slice(PIPELINE_STAGES.indexOf(m[1]), PIPELINE_STAGES.indexOf(m[2]) + 1);
  return stages.length > 1 && !chainProblem(stages) && chainGroup(stages) === groupId ? stages : undefined;
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
    const [topics, { groups }] = await Promise.all([this.admin.listTopics(), this.admin.listGroups()]);
    const existing = new Set(topics);
    // A stage may run inside a stage chain (its own group then stands still): of the stage's group and the groups of
    // the chains that run it, the one furthest ahead on the stage's input topic is the one consuming it (a switch
    // starts the new group at the old one's end), so its offsets are the stage's.
    const chains = groups.flatMap((g) => {
      const stages = chainStagesOf(g.groupId);
      return stages ? [{ groupId: g.groupId, stages }] : [];
    });
    for (const { stage, topic, group: own } of CONSUMERS) {
      if (!existing.has(topic)) continue;
      const candidates = [own, ...chains.filter((c) => c.stages.some((s) => s === stage)).map((c) => c.groupId)];
      const [highs, ...byGroup] = await Promise.all([
        this.admin.fetchTopicOffsets(topic),
        ...candidates.map(async (groupId) => {
          const [t] = await this.admin.fetchOffsets({ groupId, topics: [topic] });
          const offsets = new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
          return { groupId, offsets, total: [...offsets.values()].reduce((a, o) => a + Math.max(0, o), 0) };
        }),
      ]);
      const ahead = byGroup.reduce((a, b) => (b.total > a.total ? b : a));
      const group = ahead.groupId;
      const committedBy = ahead.offsets;
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
