import type { Redis } from 'ioredis';
import {
  CodecError,
  decodeMessage,
  newEnvelope,
  PIPELINE_STAGES,
  STAGE_GRAPH,
  type Envelope,
  type PipelineMessage,
  type StageVerdict,
} from '@mailgate/contracts';

/**
 * Quarantined (and dead-lettered) messages, kept whole so an administrator can look at them and release them.
 *   q:<id>        hash    envelope (JSON), raw (bytes), reason, stage, kind, sourceTopic, at, size
 *   q:idx         zset    id by quarantine time (ms)
 *   q:cls:<class> zset    the same, per reason class (quarantineClass): the by-reason depth metric, O(1) per class
 *   q:done:<id>   string  number of verdicts the message had when it was released/deleted (tombstone, see add())
 *   q:lock:<id>   string  held while one release/delete of the message is in progress
 * The record stays in Kafka too (mailgate.quarantine); this is the queryable copy.
 */
export interface QuarantineEntry {
  readonly id: string;
  readonly envelope: Envelope;
  readonly reason: string;
  /** The stage that quarantined it (or that dead-lettered it). */
  readonly stage: string;
  /** quarantine / reject (a stage's verdict), dead-letter (a stage failed on it), undecodable (not a mailgate record). */
  readonly kind: 'quarantine' | 'reject' | 'dead-letter' | 'undecodable' | string;
  /** The topic the stage consumed: where a "recheck" release re-enters. */
  readonly sourceTopic: string;
  readonly at: string;
  readonly size: number;
}

/**
 * Why mail sits in quarantine, as a small fixed set (a metric label must not carry free text): which stage held it,
 * and for attachment-policy whether the MIME could not be read. Ingress quarantines only for sender
 * authentication (DMARC p=quarantine); dead-letter covers undecodable records too.
 */
export const QUARANTINE_CLASSES = [
  'virus',
  'attachment',
  'malformed',
  'dnsbl',
  'spam',
  'sender-auth',
  'dead-letter',
  'other',
] as const;
export type QuarantineClass = (typeof QUARANTINE_CLASSES)[number];

export function quarantineClass(kind: string, stage: string, details?: Record<string, unknown>): QuarantineClass {
  if (kind === 'dead-letter' || kind === 'undecodable') return 'dead-letter';
  switch (stage) {
    case 'virus-scan':
      return 'virus';
    case 'attachment-policy':
      return details?.['malformed'] === true ? 'malformed' : 'attachment';
    case 'dnsbl-check':
      return 'dnsbl';
    case 'spam-check':
      return 'spam';
    case 'ingress-smtp':
      return 'sender-auth';
    default:
      return 'other';
  }
}

export class QuarantineStore {
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionDays: number,
  ) {
    this.ttlSeconds = Math.ceil(retentionDays * 86400);
  }

  /**
   * Store a record of the quarantine or dead-letter topic. Returns null when the record is a redelivery of a
   * message an administrator already released or deleted (the admin's consumer is at-least-once: without the
   * tombstone a restart before the offset commit would bring released mail back). A message released with
   * recheck and quarantined again carries more verdicts than the tombstone and is stored again.
   *
   * A dead-letter record that cannot be decoded (that is often why it was dead-lettered) is kept too, as
   * `undecodable`, so it can be inspected and deleted — never silently dropped.
   */
  async add(
    value: Buffer,
    sourceTopic: string,
    deadLetterError?: string,
    key?: string,
  ): Promise<QuarantineEntry | null> {
    let msg: PipelineMessage;
    let undecodable: string | undefined;
    try {
      msg = decodeMessage(value);
    } catch (err) {
      if (!(err instanceof CodecError) || deadLetterError === undefined) throw err;
      undecodable = err.message;
      const id = key && /^[0-9A-Za-z._-]{1,64}$/.test(key) ? key : `undecodable-${Date.now()}`;
      msg = { envelope: newEnvelope({ id, mailFrom: '', rcptTo: [], size: value.length }), raw: value };
    }
    const done = await this.redis.get(`q:done:${msg.envelope.id}`);
    if (done !== null && msg.envelope.verdicts.length <= Number(done)) return null;
    const last: StageVerdict | undefined = msg.envelope.verdicts.at(-1);
    const kind = undecodable ? 'undecodable' : deadLetterError ? 'dead-letter' : (last?.verdict.kind ?? 'quarantine');
    const reason = undecodable
      ? `${deadLetterError}; undecodable record: ${undecodable}`
      : (deadLetterError ??
        (last && 'reason' in last.verdict ? last.verdict.reason : 'quarantined (no reason recorded)'));
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
    const k = `q:${entry.id}`;
    const cls = quarantineClass(kind, entry.stage, undecodable || deadLetterError ? undefined : last?.details);
    const m = this.redis.multi();
    // A message quarantined again after a recheck may be held for another reason now: one class at a time.
    for (const c of QUARANTINE_CLASSES) if (c !== cls) m.zrem(`q:cls:${c}`, entry.id);
    await m
      .hset(k, {
        envelope: JSON.stringify(entry.envelope),
        raw: msg.raw,
        reason,
        stage: entry.stage,
        kind,
        sourceTopic,
        at: entry.at,
        size: String(entry.size),
        class: cls,
      })
      .expire(k, this.ttlSeconds)
      .zadd('q:idx', at, entry.id)
      .zadd(`q:cls:${cls}`, at, entry.id)
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
    const [env, raw] = await Promise.all([
      this.redis.hget(`q:${id}`, 'envelope'),
      this.redis.hgetBuffer(`q:${id}`, 'raw'),
    ]);
    if (!env || !raw) return null;
    return { envelope: JSON.parse(env) as Envelope, raw };
  }

  /**
   * Claim a message for one release/delete (two administrators clicking at once must not release it twice).
   * Returns a function that gives the claim back, or null when someone else holds it.
   */
  async claim(id: string, ttlMs = 60_000): Promise<(() => Promise<void>) | null> {
    const ok = await this.redis.set(`q:lock:${id}`, '1', 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return null;
    return async () => void (await this.redis.del(`q:lock:${id}`));
  }

  /** Remove after a release/delete, leaving the tombstone that keeps a redelivered record from coming back. */
  async remove(id: string, verdictCount?: number): Promise<boolean> {
    const m = this.redis.multi().del(`q:${id}`).zrem('q:idx', id);
    for (const c of QUARANTINE_CLASSES) m.zrem(`q:cls:${c}`, id);
    if (verdictCount !== undefined) m.set(`q:done:${id}`, String(verdictCount), 'EX', this.ttlSeconds);
    const [[, n]] = (await m.exec()) as [[unknown, number]];
    return n > 0;
  }

  async count(): Promise<number> {
    return this.redis.zcard('q:idx');
  }

  /**
   * Messages in quarantine per reason class. Index entries older than the retention (their hash has expired) are
   * pruned first, so the gauge falls when mail expires, not only when someone lists it. Entries stored before the
   * classes existed count as `other`.
   */
  async countByClass(now = Date.now()): Promise<Record<QuarantineClass, number>> {
    const expired = `(${now - this.ttlSeconds * 1000}`;
    const m = this.redis.multi().zremrangebyscore('q:idx', '-inf', expired).zcard('q:idx');
    for (const c of QUARANTINE_CLASSES) m.zremrangebyscore(`q:cls:${c}`, '-inf', expired).zcard(`q:cls:${c}`);
    const res = (await m.exec()) ?? [];
    const total = Number(res[1]?.[1] ?? 0);
    const out = {} as Record<QuarantineClass, number>;
    let sum = 0;
    QUARANTINE_CLASSES.forEach((c, i) => {
      out[c] = Number(res[3 + i * 2]?.[1] ?? 0);
      sum += out[c];
    });
    out.other += Math.max(0, total - sum);
    return out;
  }
}

/** The stage that consumes `topic` (for dead-lettered records, which carry only their source topic). */
export function stageOfTopic(topic: string): string {
  return PIPELINE_STAGES.find((s) => STAGE_GRAPH[s].consumes === topic) ?? 'unknown';
}
