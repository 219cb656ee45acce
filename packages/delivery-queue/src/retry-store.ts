import type { Envelope } from '@mailgate/contracts';
import type { Redis } from 'ioredis';

/**
 * Messages with recipients still to be retried live here (Redis), from the first temporary failure until every
 * recipient is final. Once a message is stored and its retry job scheduled, the Kafka record is done: Redis —
 * which must run with AOF (appendfsync everysec or always) — is now what keeps the message from being lost.
 *
 *   delivery:retry:<id>       hash: env (envelope JSON), first, attempts, next, lastError, held, delayNotified,
 *                             r:<recipient> = last reply, one field per recipient still pending
 *   delivery:retry:<id>:raw   the raw message bytes
 *   delivery:retry:index      sorted set: id scored by next attempt (ms), for listing and the reconciler
 */
const ADD = `
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'env', ARGV[2], 'first', ARGV[4], 'attempts', '1', 'held', '0', 'next', ARGV[5], 'delayNotified', '0')
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  created = 1
end
redis.call('HSET', KEYS[1], 'lastError', ARGV[6])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[i], ARGV[i + 1])
end
return created`;

const FINISH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  if string.sub(f, 1, 2) == 'r:' then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`;

const RECORD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local nFinal = tonumber(ARGV[4])
for i = 5, 4 + nFinal do redis.call('HDEL', KEYS[1], 'r:' .. ARGV[i]) end
for i = 5 + nFinal, #ARGV, 2 do redis.call('HSET', KEYS[1], 'r:' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'next', ARGV[2], 'lastError', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`;

export interface RetryEntry {
  readonly id: string;
  readonly envelope: Envelope;
  /** Pending recipients → their last reply. */
  readonly pending: Map<string, string>;
  readonly firstAttemptAt: number;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string;
  readonly held: boolean;
  readonly delayNotified: boolean;
}

export class RetryStore {
  constructor(private readonly redis: Redis) {}

  private meta(id: string) {
    return `delivery:retry:${id}`;
  }
  private raw(id: string) {
    return `delivery:retry:${id}:raw`;
  }
  private readonly index = 'delivery:retry:index';

  /**
   * Add pending recipients (creating the entry with the raw message if new). Returns true when created.
   * An existing entry keeps its schedule: the retry job owns it.
   */
  async add(
    envelope: Envelope,
    raw: Buffer,
    pending: Map<string, string>,
    nextAttemptAt: number,
    lastError: string,
  ): Promise<boolean> {
    const args: (string | Buffer | number)[] = [
      envelope.id,
      JSON.stringify(envelope),
      raw,
      Date.now(),
      nextAttemptAt,
      lastError,
    ];
    for (const [r, reply] of pending) args.push(r, reply);
    const created = await this.redis.eval(ADD, 3, this.meta(envelope.id), this.raw(envelope.id), this.index, ...args);
    return created === 1;
  }

  /** The Redis key of a message's entry (a hash), for a caller that reads it with other keys: see fromHash. */
  key(id: string): string {
    return this.meta(id);
  }

  async load(id: string): Promise<RetryEntry | null> {
    return RetryStore.fromHash(id, await this.redis.hgetall(this.meta(id)));
  }

  /** The entry from the fields of its hash (HGETALL of key(id)); null when there is none. */
  static fromHash(id: string, h: Record<string, string>): RetryEntry | null {
    if (!h['env']) return null;
    const pending = new Map<string, string>();
    for (const [k, v] of Object.entries(h)) if (k.startsWith('r:')) pending.set(k.slice(2), v);
    return {
      id,
      envelope: JSON.parse(h['env']) as Envelope,
      pending,
      firstAttemptAt: Number(h['first']),
      attempts: Number(h['attempts'] ?? 0),
      nextAttemptAt: Number(h['next'] ?? 0),
      lastError: h['lastError'] ?? '',
      held: h['held'] === '1',
      delayNotified: h['delayNotified'] === '1',
    };
  }

  async loadRaw(id: string): Promise<Buffer | null> {
    return this.redis.getBuffer(this.raw(id));
  }

  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.meta(id))) === 1;
  }

  /**
   * After an attempt: final recipients leave, pending ones get their new reply, the schedule moves. A no-op when
   * the entry was deleted meanwhile (admin delete during an attempt). Returns false then.
   */
  async recordAttempt(
    id: string,
    upd: { final: readonly string[]; pending: Map<string, string>; nextAttemptAt: number; lastError: string },
  ): Promise<boolean> {
    const args: (string | number)[] = [id, upd.nextAttemptAt, upd.lastError, upd.final.length, ...upd.final];
    for (const [r, reply] of upd.pending) args.push(r, reply);
    return (await this.redis.eval(RECORD, 2, this.meta(id), this.index, ...args)) === 1;
  }

  async setField(id: string, field: 'held' | 'delayNotified', on: boolean): Promise<void> {
    await this.redis.hset(this.meta(id), field, on ? '1' : '0');
  }

  async setNext(id: string, nextAttemptAt: number): Promise<void> {
    await this.redis
      .multi()
      .hset(this.meta(id), 'next', String(nextAttemptAt))
      .zadd(this.index, nextAttemptAt, id)
      .exec();
  }

  /** Drop the entry when no recipient is pending any more. True when it is gone. */
  async finishIfDone(id: string): Promise<boolean> {
    return (await this.redis.eval(FINISH, 3, this.meta(id), this.raw(id), this.index, id)) === 1;
  }

  /** Remove unconditionally (admin delete). */
  async remove(id: string): Promise<void> {
    await this.redis.multi().del(this.meta(id), this.raw(id)).zrem(this.index, id).exec();
  }

  /** Ids by next attempt, oldest first. */
  async list(offset = 0, limit = 100): Promise<{ id: string; nextAttemptAt: number }[]> {
    const r = await this.redis.zrange(this.index, offset, offset + limit - 1, 'WITHSCORES');
    const out: { id: string; nextAttemptAt: number }[] = [];
    for (let i = 0; i < r.length; i += 2) out.push({ id: r[i]!, nextAttemptAt: Number(r[i + 1]) });
    return out;
  }

  async count(): Promise<number> {
    return this.redis.zcard(this.index);
  }

  /** Ids whose next attempt is older than `before` (ms): candidates for the reconciler. */
  async overdue(before: number, limit = 500): Promise<string[]> {
    return this.redis.zrangebyscore(this.index, '-inf', before, 'LIMIT', 0, limit);
  }
}
