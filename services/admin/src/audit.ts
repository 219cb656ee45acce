import type { Redis } from 'ioredis';
import type { Logger } from '@mailgate/runtime';

export interface AuditEntry {
  readonly at: string;
  /** Token name. */
  readonly who: string;
  readonly action: string;
  readonly target: string;
  readonly details?: Record<string, unknown>;
}

/** Every administrative action, in Redis (newest first, capped) and in the log stream (for the SIEM). */
export class AuditLog {
  constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
    private readonly max = 10_000,
  ) {}

  async record(e: Omit<AuditEntry, 'at'>): Promise<void> {
    const entry: AuditEntry = { at: new Date().toISOString(), ...e };
    this.log.info({ audit: entry }, `admin action ${e.action} ${e.target} by ${e.who}`);
    await this.redis
      .multi()
      .lpush('audit', JSON.stringify(entry))
      .ltrim('audit', 0, this.max - 1)
      .exec();
  }

  async list(limit = 100): Promise<AuditEntry[]> {
    return (await this.redis.lrange('audit', 0, limit - 1)).map((s) => JSON.parse(s) as AuditEntry);
  }
}
