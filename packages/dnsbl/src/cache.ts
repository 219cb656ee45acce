import type { Redis } from 'ioredis';
import { withTimeout, type Logger } from '@mailgate/runtime';

/**
 * Answer cache keyed by the DNS question (e.g. `2.0.0.127.zen.spamhaus.org`): listed and not-listed answers are
 * kept for the DNS TTL (clamped), failures never. Redis makes one replica's lookup serve all replicas and the
 * connect filter; without Redis a bounded in-process map does the same for one process.
 *
 * The cache is an accelerator, never a dependency: a slow or down Redis is bypassed (lookups go to DNS).
 */
export interface CachedAnswer {
  /** A records of a listing; absent = not listed (NXDOMAIN). */
  readonly a?: readonly string[];
  readonly txt?: string;
}

export interface AnswerCache {
  getMany(names: readonly string[]): Promise<(CachedAnswer | undefined)[]>;
  setMany(entries: readonly { name: string; value: CachedAnswer; ttlSec: number }[]): Promise<void>;
}

/** How long a cache call may take before we go to DNS instead. */
const CACHE_OP_TIMEOUT_MS = 250;

export class RedisAnswerCache implements AnswerCache {
  private lastWarn = 0;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarn > 30_000) {
      this.lastWarn = now;
      this.log.warn({ err }, 'dnsbl cache (redis) unavailable: querying DNS directly');
    }
  }

  async getMany(names: readonly string[]): Promise<(CachedAnswer | undefined)[]> {
    if (names.length === 0) return [];
    try {
      const vals = await withTimeout(this.redis.mget(names.map((n) => this.prefix + n)), CACHE_OP_TIMEOUT_MS, 'cache');
      return vals.map((v) => {
        if (v === null) return undefined;
        try {
          return JSON.parse(v) as CachedAnswer;
        } catch {
          return undefined;
        }
      });
    } catch (err) {
      this.warn(err);
      return names.map(() => undefined);
    }
  }

  async setMany(entries: readonly { name: string; value: CachedAnswer; ttlSec: number }[]): Promise<void> {
    if (entries.length === 0) return;
    try {
      const m = this.redis.multi();
      for (const e of entries) m.set(this.prefix + e.name, JSON.stringify(e.value), 'EX', e.ttlSec);
      await withTimeout(m.exec(), CACHE_OP_TIMEOUT_MS, 'cache');
    } catch (err) {
      this.warn(err);
    }
  }
}

export class MemoryAnswerCache implements AnswerCache {
  private readonly map = new Map<string, { value: CachedAnswer; expires: number }>();
  constructor(private readonly maxEntries: number) {}

  async getMany(names: readonly string[]): Promise<(CachedAnswer | undefined)[]> {
    const now = Date.now();
    return names.map((n) => {
      const e = this.map.get(n);
      if (!e) return undefined;
      if (e.expires <= now) {
        this.map.delete(n);
        return undefined;
      }
      return e.value;
    });
  }

  async setMany(entries: readonly { name: string; value: CachedAnswer; ttlSec: number }[]): Promise<void> {
    if (this.maxEntries === 0) return;
    const now = Date.now();
    for (const e of entries) {
      // Map keeps insertion order: evict the oldest when full.
      if (this.map.size >= this.maxEntries && !this.map.has(e.name)) {
        const oldest = this.map.keys().next().value;
        if (oldest !== undefined) this.map.delete(oldest);
      }
      this.map.set(e.name, { value: e.value, expires: now + e.ttlSec * 1000 });
    }
  }
}

/**
 * How long a process keeps an answer it read from (or wrote to) Redis in memory. Every SMTP connection asks about
 * its client at connect, and a busy sender opens many connections: without this each one cost a Redis MGET round
 * trip (client CPU and redis-server CPU). A few seconds keep a burst of repeats in process; an answer seen here can
 * be at most this much older than Redis's copy, nothing compared with the TTLs (minutes) the lists publish.
 */
export const FRONT_TTL_SEC = 5;

/** An in-process front (short TTL) over a shared cache: repeats within `frontTtlSec` skip the shared one. */
export class TieredAnswerCache implements AnswerCache {
  private readonly front: MemoryAnswerCache;

  constructor(
    private readonly back: AnswerCache,
    maxEntries: number,
    private readonly frontTtlSec = FRONT_TTL_SEC,
  ) {
    this.front = new MemoryAnswerCache(maxEntries);
  }

  async getMany(names: readonly string[]): Promise<(CachedAnswer | undefined)[]> {
    const out = await this.front.getMany(names);
    const missing: number[] = [];
    out.forEach((v, i) => v === undefined && missing.push(i));
    if (missing.length === 0) return out;
    const fromBack = await this.back.getMany(missing.map((i) => names[i]!));
    const keep: { name: string; value: CachedAnswer; ttlSec: number }[] = [];
    missing.forEach((i, j) => {
      const v = fromBack[j];
      out[i] = v;
      if (v) keep.push({ name: names[i]!, value: v, ttlSec: this.frontTtlSec });
    });
    await this.front.setMany(keep);
    return out;
  }

  async setMany(entries: readonly { name: string; value: CachedAnswer; ttlSec: number }[]): Promise<void> {
    await this.front.setMany(entries.map((e) => ({ ...e, ttlSec: Math.min(e.ttlSec, this.frontTtlSec) })));
    await this.back.setMany(entries);
  }
}

export class NoCache implements AnswerCache {
  async getMany(names: readonly string[]): Promise<(CachedAnswer | undefined)[]> {
    return names.map(() => undefined);
  }
  async setMany(): Promise<void> {}
}
