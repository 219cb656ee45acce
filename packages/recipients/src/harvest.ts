import type { Redis } from 'ioredis';
import type { RecipientsConfig } from './config.js';

/**
 * Directory-harvest protection (Exchange's recipient-filter tarpit): each unknown recipient in a session is
 * answered a little later than the one before (`tarpitBaseMs * tarpitFactor^(n-1)`, capped), and each client IP
 * has a budget of unknown recipients per window, counted in Redis across replicas; past it the session is dropped
 * with 421 4.7.0 — and so is every later session from that IP, at its first unknown recipient, until the window
 * ends. A Redis failure never drops a session (the tarpit still applies): the budget is protection, not a
 * correctness check.
 */

const SCRIPT = `local c = redis.call('INCR', KEYS[1]); if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end; return c`;

export interface HarvestVerdict {
  /** Wait this long before answering the 550. */
  readonly delayMs: number;
  /** Unknown recipients counted for this IP in the current window (0 when not counted). */
  readonly count: number;
  /** Over the budget: answer 421 4.7.0 and close. */
  readonly drop: boolean;
}

export class HarvestGuard {
  constructor(
    private readonly cfg: RecipientsConfig['harvest'],
    private readonly redis: Redis | null,
    private readonly onError?: (err: Error) => void,
  ) {}

  delayFor(unknownInSession: number): number {
    const { tarpitBaseMs: base, tarpitFactor: f, tarpitMaxMs: max } = this.cfg;
    if (base <= 0 || unknownInSession <= 0) return 0;
    return Math.min(max, Math.round(base * f ** (unknownInSession - 1)));
  }

  /** Count one unknown recipient for `ip`; `unknownInSession` includes this one. */
  async unknownRecipient(ip: string, unknownInSession: number): Promise<HarvestVerdict> {
    const delayMs = this.delayFor(unknownInSession);
    if (!this.redis || this.cfg.budget <= 0) return { delayMs, count: 0, drop: false };
    const w = Math.floor(Date.now() / 1000 / this.cfg.windowSeconds);
    try {
      const count = Number(await this.redis.eval(SCRIPT, 1, `rcpt:harvest:${ip}:${w}`, this.cfg.windowSeconds * 1000));
      return { delayMs, count, drop: count > this.cfg.budget };
    } catch (err) {
      this.onError?.(err as Error);
      return { delayMs, count: 0, drop: false };
    }
  }
}
