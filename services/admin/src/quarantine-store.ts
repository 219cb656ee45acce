import type { Redis } from 'ioredis';
import {
  decodeMessage,
  PIPELINE_STAGES,
  STAGE_GRAPH,
  type Envelope,
  type PipelineMessage,
  type StageVerdict,
} from '@mailgate/contracts';

/**
 * Quarantined (and dead-lettered) messages, kept whole so an administrator can look at them and release them.
 *   q:<id>     hash  envelope (JSON), raw (bytes), reason, stage, kind, sourceTopic, at
 *   q:idx      zset  id by quarantine time (ms)
 * The record stays in Kafka too (mailgate.quarantine); this is the queryable copy.
 */
export interface QuarantineEntry {
  readonly id: string;
  readonly envelope: Envelope;
  readonly reason: string;
  /** The stage that quarantined it (or that dead-lettered it). */
  readonly stage: string;
  readonly kind: 'quarantine' | 'reject' | 'dead-letter' | string;
  /** The topic the stage consumed: where a "recheck" release re-enters. */
  readonly sourceTopic: string;
  readonly at: string;
  readonly size: number;
}

export class QuarantineStore {
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionDays: number,
  ) {
    this.ttlSeconds = Math.ceil(retentionDays * 86400);
  }

  async add(value: Buffer, sourceTopic: string, deadLetterError?: string): Promise<QuarantineEntry> {
    const msg = decodeMessage(value);
    const last: StageVerdict | undefined = msg.envelope.verdicts.at(-1);
    const kind = deadLetterError ? 'dead-letter' : (last?.verdict.kind ?? 'quarantine');
    const reason =
      deadLetterError ?? (last && 'reason' in last.verdict ? last.verdict.reason : 'quarantined (no reason recorded)');
    const at = Date.now();
    const entry: QuarantineEntry = {
      id: msg.envelope.id,
      envelope: msg.envelope,
      reason,
      stage: deadLetterError ? stageOfTopic(sourceTopic) : (last?.stage ?? 'unknown'),
      kind,
      sourceTopic,
      at: new Date(at).toISOString(),
      size: msg.raw.length,
    };
    const key = `q:${entry.id}`;
    await this.redis
      .multi()
      .hset(key, {
        envelope: JSON.stringify(entry.envelope),
        raw: msg.raw,
        reason,
        stage: entry.stage,
        kind,
        sourceTopic,
        at: entry.at,
        size: String(entry.size),
      })
      .expire(key, this.ttlSeconds)
      .zadd('q:idx', at, entry.id)
      .exec();
    return entry;
  }

  async list(limit = 100): Promise<QuarantineEntry[]> {
    const ids = await this.redis.zrevrange('q:idx', 0, limit - 1);
    const out: QuarantineEntry[] = [];
    for (const id of ids) {
      const e = await this.get(id);
      if (e) out.push(e);
      else await this.redis.zrem('q:idx', id); // expired
    }
    return out;
  }

  async get(id: string): Promise<QuarantineEntry | null> {
    const h = await this.redis.hmget(`q:${id}`, 'envelope', 'reason', 'stage', 'kind', 'sourceTopic', 'at', 'size');
    if (!h[0]) return null;
    return {
      id,
      envelope: JSON.parse(h[0]) as Envelope,
      reason: h[1] ?? '',
      stage: h[2] ?? '',
      kind: h[3] ?? '',
      sourceTopic: h[4] ?? '',
      at: h[5] ?? '',
      size: Number(h[6] ?? 0),
    };
  }

  async message(id: string): Promise<PipelineMessage | null> {
    const [env, raw] = await Promise.all([this.redis.hget(`q:${id}`, 'envelope'), this.redis.hgetBuffer(`q:${id}`, 'raw')]);
    if (!env || !raw) return null;
    return { envelope: JSON.parse(env) as Envelope, raw };
  }

  async remove(id: string): Promise<boolean> {
    const [[, n]] = (await this.redis.multi().del(`q:${id}`).zrem('q:idx', id).exec()) as [[unknown, number]];
    return n > 0;
  }

  async count(): Promise<number> {
    return this.redis.zcard('q:idx');
  }
}

/** The stage that consumes `topic` (for dead-lettered records, which carry only their source topic). */
export function stageOfTopic(topic: string): string {
  return PIPELINE_STAGES.find((s) => STAGE_GRAPH[s].consumes === topic) ?? 'unknown';
}
