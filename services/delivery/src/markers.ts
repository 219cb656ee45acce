import type { Redis } from 'ioredis';
import { LUA_CALL_RANGE, LuaScript } from './lua.js';

export interface DeliveredMarker {
  /** The remote server's final reply (e.g. "250 2.0.0 Ok: queued as …"). */
  readonly reply: string;
  readonly host?: string;
  readonly at: string;
}

/** Written before the final dot: an attempt to `dest` for these recipients is under way; its outcome is unknown. */
export interface PendingMark {
  readonly dest: string;
  /** The recipient set of that transaction (for the operator: what a resend would duplicate). */
  readonly rcpts: readonly string[];
  readonly at: string;
  /** Epoch ms after which a retry may resend (delivery.pendingTtlMs after the mark). */
  readonly until: number;
  /** The attempt that wrote it (marks written before this field existed have none). */
  readonly token?: string;
}

export interface MarkerState {
  readonly done: Map<string, DeliveredMarker>;
  /** Recipients with a pending mark and no delivered marker: an earlier attempt's outcome is unknown. */
  readonly pending: Map<string, PendingMark>;
}

/**
 * The remote 250: delivered markers set, pending marks of the transaction removed, plus the riders of MarkAlso
 * (more keys deleted, the claim released with compare-and-delete), atomically and in one round trip.
 *   KEYS: n delivered-marker keys, keys to delete…, [claim key]   ARGV: marker JSON, ttlMs, n, claim token ('' = none)
 */
const MARK = new LuaScript(`${LUA_CALL_RANGE}
local n = tonumber(ARGV[3])
for i = 1, n do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
local last = #KEYS
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[last]) == ARGV[4] then redis.call('DEL', KEYS[last]) end
  last = last - 1
end
call_range('DEL', n + 1, last)
return 1`);

/** Writes that ride along with the delivered markers (same script). Each is bookkeeping a lost write only delays. */
export interface MarkAlso {
  /** Recipients of the same transaction that got no 250 but a known answer: their pending marks go too. */
  readonly clear?: readonly string[];
  /** More keys to delete, e.g. the destination's failure counter after a success (DestinationLimits.failsKey). */
  readonly del?: readonly string[];
  /** The message's claim, released once the markers it protects are written (compare-and-delete). */
  readonly release?: { readonly key: string; readonly token: string };
}

/**
 * Exactly-once-where-possible, per (message id, recipient), in Redis:
 *  - a *pending* mark written before the final dot (and removed once the remote server has answered), so a retry
 *    that finds one knows an earlier attempt may have been accepted without our knowing it (the process died between
 *    the remote 250 and the record, or the connection dropped after the final dot: RFC 1047). The rule (see
 *    docs/operations.md "Duplicate rule"): no resend until the mark's `until`, then resend and count it as a
 *    possible duplicate. The key lives as long as delivered markers so an expired mark is still recognised.
 *  - a *delivered* marker written right after the remote 250 (through OutcomeJournal, which survives a Redis
 *    outage) and checked before every attempt, so a Kafka redelivery or a retry job that runs twice never sends
 *    the same message to a recipient that already accepted it.
 */
export class DeliveredMarkers {
  /**
   * Pending marks this process knows to be void (key → the attempt's token, and until when): the attempt never sent
   * the final dot, or got a refusal, but Redis was away when it wanted to remove the mark (or to learn whether it was
   * written at all). Without this a retry in this process would read "outcome unknown" and wait pendingTtlMs (10 min)
   * for mail that never left. Another process cannot know, and waits: the conservative reading.
   */
  private readonly voided = new Map<string, { token: string; until: number }>();

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

  /** The keys state() reads for `rcpts` (delivered markers, then pending marks), to read them in another round trip. */
  stateKeys(id: string, rcpts: readonly string[]): string[] {
    return [...rcpts.map((r) => this.key(id, r)), ...rcpts.map((r) => this.pendingKey(id, r))];
  }

  /** The state of `rcpts` from the values of stateKeys(id, rcpts), in that order. */
  parseState(id: string, rcpts: readonly string[], values: readonly (string | null)[]): MarkerState {
    const done = new Map<string, DeliveredMarker>();
    const pending = new Map<string, PendingMark>();
    rcpts.forEach((r, i) => {
      const d = values[i];
      const p = values[rcpts.length + i];
      if (d != null) done.set(r, JSON.parse(d) as DeliveredMarker);
      else if (p != null) {
        const mark = JSON.parse(p) as PendingMark;
        if (!this.isVoid(this.pendingKey(id, r), mark)) pending.set(r, mark);
      }
    });
    return { done, pending };
  }

  private isVoid(key: string, mark: PendingMark): boolean {
    const v = this.voided.get(key);
    return v !== undefined && mark.token !== undefined && v.token === mark.token;
  }

  /**
   * The attempt `token` sent no final dot (or got a refusal) for `rcpts`: remove its pending marks, and if Redis
   * refuses, remember here that they are void so this process's next attempt sends at once (see `voided`).
   */
  async voidPending(id: string, rcpts: readonly string[], token: string, now = Date.now()): Promise<void> {
    try {
      await this.clearPending(id, rcpts);
      return;
    } catch {
      // Redis is away: below.
    }
    if (this.voided.size >= 10_000) for (const [k, v] of this.voided) if (v.until <= now) this.voided.delete(k);
    for (const r of rcpts) this.voided.set(this.pendingKey(id, r), { token, until: now + this.pendingTtlMs });
  }

  /** Delivered markers and pending marks of `rcpts` in one round trip. */
  async state(id: string, rcpts: readonly string[]): Promise<MarkerState> {
    if (rcpts.length === 0) return { done: new Map(), pending: new Map() };
    return this.parseState(id, rcpts, await this.redis.mget(this.stateKeys(id, rcpts)));
  }

  /**
   * Before the final dot, by the attempt `token` (unique per attempt). Throws on a Redis error: then the dot may not be
   * sent (the caller defers, and voids the mark in case it was written all the same).
   */
  async markPending(
    id: string,
    rcpts: readonly string[],
    dest: string,
    token: string,
    now = Date.now(),
  ): Promise<void> {
    if (rcpts.length === 0) return;
    const value = JSON.stringify({
      dest,
      rcpts,
      at: new Date(now).toISOString(),
      until: now + this.pendingTtlMs,
      token,
    } satisfies PendingMark);
    const ttl = Math.max(this.ttlMs, this.pendingTtlMs);
    // One recipient (the common case): a plain SET, not MULTI/SET/EXEC.
    if (rcpts.length === 1) {
      await this.redis.set(this.pendingKey(id, rcpts[0]!), value, 'PX', ttl);
      return;
    }
    const m = this.redis.multi();
    for (const r of rcpts) m.set(this.pendingKey(id, r), value, 'PX', ttl);
    await execOrThrow(m);
  }

  /** The remote server answered without accepting (4xx/5xx): the outcome is known, a retry may send at once. */
  async clearPending(id: string, rcpts: readonly string[]): Promise<void> {
    if (rcpts.length === 0) return;
    await this.redis.del(rcpts.map((r) => this.pendingKey(id, r)));
  }

  /**
   * The remote 250: delivered markers, pending marks removed, and the riders of `also`, in one script (atomic, one
   * round trip). Idempotent.
   */
  async mark(id: string, rcpts: readonly string[], marker: DeliveredMarker, also: MarkAlso = {}): Promise<void> {
    if (rcpts.length === 0) return;
    const keys = [
      ...rcpts.map((r) => this.key(id, r)),
      ...rcpts.map((r) => this.pendingKey(id, r)),
      ...(also.clear ?? []).map((r) => this.pendingKey(id, r)),
      ...(also.del ?? []),
      ...(also.release ? [also.release.key] : []),
    ];
    await MARK.run(this.redis, keys, [JSON.stringify(marker), this.ttlMs, rcpts.length, also.release?.token ?? '']);
  }
}

async function execOrThrow(m: ReturnType<Redis['multi']>): Promise<void> {
  const res = await m.exec();
  if (res === null) throw new Error('redis transaction aborted');
  const err = res.find(([e]) => e)?.[0];
  if (err) throw err;
}
