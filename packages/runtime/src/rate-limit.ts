import type { Redis } from 'ioredis';
import { withTimeout } from './timeout.js';

/**
 * Fixed-window counters in Redis, so a limit holds across replicas: one key per (kind, subject, window),
 * INCR + PEXPIRE in one script. `kind` names the counter and its owner (`ingress:msg`, `admin:authfail`). A Redis
 * that does not answer within `timeoutMs` is an error; the caller applies its own on-Redis-error policy.
 */
const SCRIPT = `local c = redis.call('INCR', KEYS[1]); if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end; return c`;

export class WindowCounter {
  constructor(
    private readonly redis: Redis,
    private readonly kind: string,
    readonly max: number,
    private readonly windowSeconds: number,
    private readonly timeoutMs = 1000,
  ) {}

  get enabled(): boolean {
    return this.max > 0;
  }

  private key(subject: string): string {
    const w = Math.floor(Date.now() / 1000 / this.windowSeconds);
    return `${this.kind}:${subject}:${w}`;
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.timeoutMs, 'redis');
  }

  /** Seconds until the current window ends (a Retry-After value, at least 1). */
  retryAfterSeconds(now = Date.now()): number {
    const ms = this.windowSeconds * 1000;
    return Math.max(1, Math.ceil((ms - (now % ms)) / 1000));
  }

  /** Count one event; resolves with the count in the current window. */
  async hit(subject: string): Promise<number> {
    const n = await this.withTimeout(this.redis.eval(SCRIPT, 1, this.key(subject), this.windowSeconds * 1000));
    return Number(n);
  }

  /** The count in the current window without counting. */
  async current(subject: string): Promise<number> {
    return Number((await this.withTimeout(this.redis.get(this.key(subject)))) ?? 0);
  }
}
