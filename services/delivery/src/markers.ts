import type { Redis } from 'ioredis';

export interface DeliveredMarker {
  /** The remote server's final reply (e.g. "250 2.0.0 Ok: queued as …"). */
  readonly reply: string;
  readonly host?: string;
  readonly at: string;
}

/** Written before DATA: an attempt to `dest` for these recipients is under way; its outcome is not known yet. */
export interface PendingMark {
  readonly dest: string;
  /** The recipient set of that transaction (for the operator: what a resend would duplicate). */
  readonly rcpts: readonly string[];
  readonly at: string;
  /** Epoch ms after which a retry may resend (delivery.pendingTtlMs after the mark). */
  readonly until: number;
}

export interface MarkerState {
  readonly done: Map<string, DeliveredMarker>;
  /** Recipients with a pending mark and no delivered marker: an earlier attempt's outcome is unknown. */
  readonly pending: Map<string, PendingMark>;
}

/**
 * Exactly-once-where-possible, per (message id, recipient), in Redis:
 *  - a *pending* mark written before DATA (and removed once the remote server has answered), so a retry that
 *    finds one knows an earlier attempt may have been accepted without our knowing it (the process died between
 *    the remote 250 and the record, or the connection dropped after the final dot: RFC 1047). The rule (see
 *    docs/operations.md "Duplicate rule"): no resend until the mark's `until`, then resend and count it as a
 *    possible duplicate. The key lives as long as delivered markers so an expired mark is still recognised.
 *  - a *delivered* marker written right after the remote 250 (through OutcomeJournal, which survives a Redis
 *    outage) and checked before every attempt, so a Kafka redelivery or a retry job that runs twice never sends
 *    the same message to a recipient that already accepted it.
 */
export class DeliveredMarkers {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
    private readonly pendingTtlMs: number = 600_000,
  ) {}

  private key(id: string, rcpt: string): string {
    return `delivery:done:${id}:${rcpt.toLowerCase()}`;
  }

  private pendingKey(id: string, rcpt: string): string {
    return `delivery:pending:${id}:${rcpt.toLowerCase()}`;
  }

  /** The recipients of `id` already delivered, with their marker. */
  async delivered(id: string, rcpts: readonly string[]): Promise<Map<string, DeliveredMarker>> {
    return (await this.state(id, rcpts)).done;
  }

  /** Delivered markers and pending marks of `rcpts` in one round trip. */
  async state(id: string, rcpts: readonly string[]): Promise<MarkerState> {
    const done = new Map<string, DeliveredMarker>();
    const pending = new Map<string, PendingMark>();
    if (rcpts.length === 0) return { done, pending };
    const values = await this.redis.mget([
      ...rcpts.map((r) => this.key(id, r)),
      ...rcpts.map((r) => this.pendingKey(id, r)),
    ]);
    rcpts.forEach((r, i) => {
      const d = values[i];
      const p = values[rcpts.length + i];
      if (d != null) done.set(r, JSON.parse(d) as DeliveredMarker);
      else if (p != null) pending.set(r, JSON.parse(p) as PendingMark);
    });
    return { done, pending };
  }

  /** Before DATA. Throws on a Redis error: then nothing may be sent (the caller defers). */
  async markPending(id: string, rcpts: readonly string[], dest: string, now = Date.now()): Promise<void> {
    if (rcpts.length === 0) return;
    const value = JSON.stringify({
      dest,
      rcpts,
      at: new Date(now).toISOString(),
      until: now + this.pendingTtlMs,
    } satisfies PendingMark);
    const m = this.redis.multi();
    for (const r of rcpts) m.set(this.pendingKey(id, r), value, 'PX', Math.max(this.ttlMs, this.pendingTtlMs));
    await execOrThrow(m);
  }

  /** The remote server answered without accepting (4xx/5xx): the outcome is known, a retry may send at once. */
  async clearPending(id: string, rcpts: readonly string[]): Promise<void> {
    if (rcpts.length === 0) return;
    await this.redis.del(rcpts.map((r) => this.pendingKey(id, r)));
  }

  /** The remote 250: delivered markers, pending marks removed (one MULTI). Idempotent. */
  async mark(id: string, rcpts: readonly string[], marker: DeliveredMarker): Promise<void> {
    if (rcpts.length === 0) return;
    const value = JSON.stringify(marker);
    const m = this.redis.multi();
    for (const r of rcpts) m.set(this.key(id, r), value, 'PX', this.ttlMs);
    m.del(rcpts.map((r) => this.pendingKey(id, r)));
    await execOrThrow(m);
  }
}

async function execOrThrow(m: ReturnType<Redis['multi']>): Promise<void> {
  const res = await m.exec();
  if (res === null) throw new Error('redis transaction aborted');
  const err = res.find(([e]) => e)?.[0];
  if (err) throw err;
}
