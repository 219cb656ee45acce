import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { networkMatcher, normalizeIp, WindowCounter, type Logger } from '@mailgate/runtime';
import type { AdminConfig } from './config.js';

export type ThrottleDecision = { ok: true } | { ok: false; status: 429 | 503; retryAfter: number; message: string };

/**
 * Failed-authentication throttle per client IP (tokens are long random strings, but a scanner must not be able
 * to try them at line rate). Counted in Redis so every admin replica sees the same count.
 */
export class AuthThrottle {
  private readonly counter: WindowCounter | null;
  private readonly proxies;

  constructor(
    redis: Redis | null,
    private readonly cfg: Pick<AdminConfig, 'authFailures' | 'trustedProxies'>,
    private readonly log: Logger,
  ) {
    this.counter =
      redis && cfg.authFailures.max > 0
        ? new WindowCounter(redis, 'admin:authfail', cfg.authFailures.max, cfg.authFailures.windowSeconds)
        : null;
    this.proxies = networkMatcher(cfg.trustedProxies);
  }

  /**
   * The client's address. Behind a trusted proxy, X-Forwarded-For is read right to left (each proxy appends the
   * address it received from) and the first address that is not a trusted proxy is the client; anything left of
   * it was written by the client and is not believed.
   */
  clientIp(req: FastifyRequest): string {
    let ip = normalizeIp(req.socket.remoteAddress ?? '');
    if (!this.proxies.matches(ip)) return ip;
    const xff = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(xff) ? xff.join(',') : (xff ?? ''))
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      ip = normalizeIp(hops[i]!);
      if (!this.proxies.matches(ip)) return ip;
    }
    return ip;
  }

  /** May this client present a credential now? */
  async check(ip: string): Promise<ThrottleDecision> {
    const c = this.counter;
    if (!c) return { ok: true };
    try {
      if ((await c.current(ip)) < c.max) return { ok: true };
      return {
        ok: false,
        status: 429,
        retryAfter: c.retryAfterSeconds(),
        message: 'too many failed authentication attempts from this address, try again later',
      };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'admin auth failure counter unavailable');
      if (this.cfg.authFailures.onRedisError === 'allow') return { ok: true };
      return { ok: false, status: 503, retryAfter: 5, message: 'authentication temporarily unavailable' };
    }
  }

  /** Count a failed attempt (never fails the request: the 401 is the answer either way). */
  async failed(ip: string, path: string): Promise<void> {
    this.log.info({ ip, path }, 'admin authentication failed');
    if (!this.counter) return;
    await this.counter
      .hit(ip)
      .catch((err: Error) => this.log.warn({ err: err.message }, 'admin auth failure not counted'));
  }
}
