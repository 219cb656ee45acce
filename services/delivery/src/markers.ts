import type { Redis } from 'ioredis';

export interface DeliveredMarker {
  /** The remote server's final reply (e.g. "250 2.0.0 Ok: queued as …"). */
  readonly reply: string;
  readonly host?: string;
  readonly at: string;
}

/**
 * Exactly-once-where-possible: a per-(message id, recipient) marker in Redis, written right after the remote 250
 * and checked before every attempt, so a Kafka redelivery (crash before the offset commit) or a retry job that
 * runs twice never sends the same message to a recipient that already accepted it. The remaining windows are
 * documented in docs/delivery.md ("Exactly once").
 */
export class DeliveredMarkers {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
  ) {}

  private key(id: string, rcpt: string): string {
    return `delivery:done:${id}:${rcpt.toLowerCase()}`;
  }

  /** The recipients of `id` already delivered, with their marker. */
  async delivered(id: string, rcpts: readonly string[]): Promise<Map<string, DeliveredMarker>> {
    const out = new Map<string, DeliveredMarker>();
    if (rcpts.length === 0) return out;
    const values = await this.redis.mget(rcpts.map((r) => this.key(id, r)));
    values.forEach((v, i) => {
      if (v !== null) out.set(rcpts[i]!, JSON.parse(v) as DeliveredMarker);
    });
    return out;
  }

  async mark(id: string, rcpts: readonly string[], marker: DeliveredMarker): Promise<void> {
    if (rcpts.length === 0) return;
    const value = JSON.stringify(marker);
    const m = this.redis.multi();
    for (const r of rcpts) m.set(this.key(id, r), value, 'PX', this.ttlMs);
    const res = await m.exec();
    const err = res?.find(([e]) => e)?.[0];
    if (err) throw err;
  }
}
