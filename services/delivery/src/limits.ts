import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LuaScript } from './lua.js';

/**
 * Per-destination limits shared by every delivery replica through Redis:
 *  - a counting semaphore of open connections per destination (a sorted set of slot tokens scored by expiry, so a
 *    crashed replica's slots free themselves after `slotTtlMs`);
 *  - a failure counter that, after N consecutive destination-wide temporary failures, backs the destination off
 *    as a whole for a while (its recipients are deferred without connecting: no hammering a sick server).
 */
const ACQUIRE = new LuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`);

const FAILURE = `
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

export interface LimitsOptions {
  readonly maxConnectionsPerDestination: number;
  readonly backoffAfterFailures: number;
  readonly backoffMs: number;
  /** A slot not refreshed for this long is considered leaked (its holder crashed). */
  readonly slotTtlMs: number;
}

export class DestinationLimits {
  constructor(
    private readonly redis: Redis,
    private readonly opts: LimitsOptions,
  ) {}

  /** The Redis key of one kind of state (conn, fails, backoff) for a destination. */
  private key(kind: string, dest: string): string {
    return `delivery:${kind}:${dest}`;
  }

  /** Try to take a connection slot; returns its token or null when the destination is at its limit. */
  async tryAcquire(dest: string): Promise<string | null> {
    const token = randomBytes(8).toString('hex');
    // By its SHA (a new connection of a busy destination runs it; the body need not travel every time).
    const ok = await ACQUIRE.run(
      this.redis,
      [this.key('conn', dest)],
      [Date.now(), this.opts.slotTtlMs, this.opts.maxConnectionsPerDestination, token],
    );
    return ok === 1 ? token : null;
  }

  async refresh(dest: string, token: string): Promise<void> {
    await this.redis.zadd(this.key('conn', dest), 'XX', Date.now() + this.opts.slotTtlMs, token);
  }

  async release(dest: string, token: string): Promise<void> {
    await this.redis.zrem(this.key('conn', dest), token);
  }

  /** Connections currently counted for a destination (all replicas). */
  async inUse(dest: string): Promise<number> {
    await this.redis.zremrangebyscore(this.key('conn', dest), '-inf', Date.now());
    return this.redis.zcard(this.key('conn', dest));
  }

  /** The key whose PTTL is the destination's remaining backoff (the engine reads it with the claim: ClaimReads). */
  backoffKey(dest: string): string {
    return this.key('backoff', dest);
  }

  /** The consecutive-failure counter: deleting it is recordSuccess (the engine does it with the markers' write). */
  failsKey(dest: string): string {
    return this.key('fails', dest);
  }

  /** Count a destination-wide temporary failure; true when it just put the destination into backoff. */
  async recordFailure(dest: string, reason: string): Promise<boolean> {
    const r = await this.redis.eval(
      FAILURE,
      2,
      this.key('fails', dest),
      this.key('backoff', dest),
      this.opts.backoffAfterFailures,
      this.opts.backoffMs,
      reason.slice(0, 500),
    );
    return r === 1;
  }

  async recordSuccess(dest: string): Promise<void> {
    await this.redis.del(this.failsKey(dest));
  }

  /** Why the destination is backed off (the failure that tripped it), if it is. */
  backoffReason(dest: string): Promise<string | null> {
    return this.redis.get(this.key('backoff', dest));
  }
}

/** Remaining backoff in ms from the PTTL of backoffKey (-2 no key, -1 no expiry: not backed off). */
export function backoffRemaining(pttl: number): number {
  return pttl > 0 ? pttl : 0;
}
