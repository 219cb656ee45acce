import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@mailgate/runtime';
import type { Redis } from 'ioredis';

/**
 * A short per-message claim in Redis, shared by every delivery replica: the section "check delivered markers →
 * send → write markers" of one message id runs in one place at a time. Without it, the retry worker of one
 * replica and the stage of another (a redelivered duplicate record) could both read "no marker" and both send.
 *
 *  - take: `SET <prefix>delivery:claim:<id> <token> NX PX ttlMs`;
 *  - hold: the holder extends the TTL every ttlMs/3 (compare-and-pexpire), so a slow SMTP transaction keeps its
 *    claim while a crashed replica's claim frees itself within ttlMs;
 *  - release: compare-and-delete (only the holder's token is removed, never a claim taken after ours expired);
 *  - wait: another attempt polls every pollMs until the claim is free, then re-checks the markers (it finds the
 *    holder's 250 and skips those recipients). After waitMs it proceeds without the claim, logged: a claim held
 *    that long means a stuck holder, and delivering late beats never delivering.
 */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

export interface ClaimOptions {
  /** Lifetime of a claim not extended by its holder (how long a crashed replica blocks the message). */
  readonly ttlMs: number;
  /** How long an attempt waits for another one's claim before proceeding without it. */
  readonly waitMs: number;
  /** Poll interval while waiting. */
  readonly pollMs: number;
}

export class MessageClaims {
  constructor(
    private readonly redis: Redis,
    private readonly opts: ClaimOptions,
    private readonly log?: Logger,
  ) {}

  private key(id: string): string {
    return `delivery:claim:${id}`;
  }

  /** Take the claim of `id` (waiting for another holder as described above), run `fn`, release it. */
  async withClaim<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const token = await this.acquire(id);
    if (token === null) return fn();
    const timer = setInterval(
      () => {
        this.redis.eval(EXTEND, 1, this.key(id), token, this.opts.ttlMs).catch(() => undefined);
      },
      Math.max(1, Math.floor(this.opts.ttlMs / 3)),
    );
    timer.unref();
    try {
      return await fn();
    } finally {
      clearInterval(timer);
      // A failed release only delays a waiter until the TTL ends; the attempt's outcome stands.
      await this.redis.eval(RELEASE, 1, this.key(id), token).catch(() => undefined);
    }
  }

  /** The claim's token, or null when waitMs passed without it becoming free. Redis errors propagate. */
  async acquire(id: string): Promise<string | null> {
    const token = randomBytes(12).toString('hex');
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      if ((await this.redis.set(this.key(id), token, 'PX', this.opts.ttlMs, 'NX')) === 'OK') return token;
      if (Date.now() >= deadline) {
        this.log?.warn(
          { msgId: id, waitedMs: this.opts.waitMs },
          'delivery claim still held by another attempt: proceeding without it (markers re-checked)',
        );
        return null;
      }
      await sleep(this.opts.pollMs);
    }
  }
}
