import type { Admin } from 'kafkajs';
import { PIPELINE_STAGES, STAGE_GRAPH, type PipelineStage } from '@mailgate/contracts';

export interface StageStats {
  readonly stage: PipelineStage;
  readonly topic: string;
  readonly group: string;
  /** Records produced to the stage's input topic, all partitions. */
  readonly produced: number;
  /** Records the stage's group has committed past. */
  readonly committed: number;
  readonly lag: number;
  /** Committed records per second since the previous sample (null on the first). */
  readonly ratePerSec: number | null;
  readonly partitions: { partition: number; high: number; committed: number; lag: number }[];
}

/** Per-stage lag and throughput from Kafka offsets (what KEDA scales on, seen by a human). */
export class PipelineStats {
  private last = new Map<string, { at: number; committed: number }>();

  constructor(private readonly admin: Admin) {}

  async sample(): Promise<StageStats[]> {
    const now = Date.now();
    const out: StageStats[] = [];
    const existing = new Set(await this.admin.listTopics());
    for (const stage of PIPELINE_STAGES) {
      const { consumes: topic, group } = STAGE_GRAPH[stage];
      if (!topic || !group || !existing.has(topic)) continue;
      const highs = await this.admin.fetchTopicOffsets(topic);
      const [committedTopic] = await this.admin.fetchOffsets({ groupId: group, topics: [topic] });
      const committedBy = new Map((committedTopic?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
      const partitions = highs.map((h) => {
        const high = Number(h.high);
        const committed = committedBy.get(h.partition) ?? 0;
        return { partition: h.partition, high, committed, lag: Math.max(0, high - committed) };
      });
      const produced = partitions.reduce((s, p) => s + p.high, 0);
      const committed = partitions.reduce((s, p) => s + p.committed, 0);
      const prev = this.last.get(stage);
      const ratePerSec = prev && now > prev.at ? ((committed - prev.committed) * 1000) / (now - prev.at) : null;
      this.last.set(stage, { at: now, committed });
      out.push({ stage, topic, group, produced, committed, lag: produced - committed, ratePerSec, partitions });
    }
    return out;
  }
}
