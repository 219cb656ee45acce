import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import path from 'node:path';
import { withTimeout, type Logger } from '@mailgate/runtime';
import type { DeliveredMarker, DeliveredMarkers, MarkAlso } from './markers.js';
import type { DeliveryMetrics } from './metrics.js';

interface Entry {
  readonly id: string;
  readonly rcpts: readonly string[];
  readonly marker: DeliveredMarker;
}

export interface OutcomeJournalOptions {
  /** Local append-only file (JSON lines) holding records Redis has not taken yet; replayed on start. */
  readonly file: string;
  /** A Redis write slower than this is journaled (the write may still land: marking is idempotent). */
  readonly writeTimeoutMs?: number;
  /** Flush retry backoff bounds. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  readonly log?: Logger | undefined;
  readonly metrics?: DeliveryMetrics | undefined;
}

/**
 * Where a remote 250 is recorded. A 250 is a fact: it must never turn into a tempfail and a resend because Redis
 * is briefly away (the Redis client gives up on a command after `maxRetriesPerRequest`, well before a Redis
 * restart is over). So `record()` never throws: it writes the delivered markers to Redis, and when that fails it
 * fsyncs the record to a local journal file, keeps it in memory (consulted by `lookup()` before every attempt of
 * this process) and retries in the background with backoff, for as long as it takes. A process restart replays the
 * file. The pending mark written before the final dot covers the rest (a crash before the record reached Redis or
 * the file).
 */
export class OutcomeJournal {
  private readonly queue: Entry[] = [];
  /** id → lower-cased recipient → marker, for records not yet in Redis. */
  private readonly buffered = new Map<string, Map<string, DeliveredMarker>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;
  private delay: number;
  private closed = false;
  private readonly writeTimeoutMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly markers: DeliveredMarkers,
    private readonly opts: OutcomeJournalOptions,
  ) {
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 2000;
    this.retryMinMs = opts.retryMinMs ?? 200;
    this.retryMaxMs = opts.retryMaxMs ?? 2000;
    this.delay = this.retryMinMs;
    opts.metrics?.observeJournalBacklog(() => this.backlog);
    this.replay();
  }

  /** Recipients (of `rcpts`) recorded here but not yet in Redis. */
  lookup(id: string, rcpts: readonly string[]): Map<string, DeliveredMarker> {
    const out = new Map<string, DeliveredMarker>();
    const b = this.buffered.get(id);
    if (!b) return out;
    for (const r of rcpts) {
      const m = b.get(r.toLowerCase());
      if (m) out.set(r, m);
    }
    return out;
  }

  /** Recipients waiting for Redis. */
  get backlog(): number {
    let n = 0;
    for (const e of this.queue) n += e.rcpts.length;
    return n;
  }

  /**
   * Record a remote 250. Never throws; resolves once the record is in Redis or durably in the journal file.
   * `also` rides along with the Redis write (DeliveredMarkers.mark) when it is made at once; it is bookkeeping, so
   * a journaled record leaves it out ('journal': the caller does it the slow way, or the TTLs do).
   */
  async record(
    id: string,
    rcpts: readonly string[],
    marker: DeliveredMarker,
    also?: MarkAlso,
  ): Promise<'redis' | 'journal'> {
    if (rcpts.length === 0) return 'redis';
    // Behind a backlog, go straight to the journal: order does not matter, but hammering a dead Redis does.
    if (this.queue.length === 0) {
      try {
        await withTimeout(this.markers.mark(id, rcpts, marker, also), this.writeTimeoutMs, 'redis write');
        return 'redis';
      } catch (err) {
        this.opts.log?.warn(
          { msgId: id, rcpts: rcpts.length, err: (err as Error).message },
          'delivered record not written to redis: journaled locally, retrying in the background',
        );
      }
    }
    const e: Entry = { id, rcpts: [...rcpts], marker };
    try {
      this.append(e);
    } catch (err) {
      // Memory still has it (this process will not resend); the pending mark covers a crash.
      this.opts.log?.error({ msgId: id, err: (err as Error).message }, 'outcome journal file not writable');
    }
    this.enqueue(e);
    this.opts.metrics?.outcomeJournaled(rcpts.length);
    return 'journal';
  }

  /** Try to write everything now (e.g. on Redis reconnect). */
  kick(): void {
    if (this.queue.length === 0 || this.closed) return;
    this.delay = this.retryMinMs;
    this.schedule(0);
  }

  /** One last flush attempt (bounded), then stop. What remains stays in the file for the next start. */
  async close(timeoutMs = 2000): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.queue.length > 0) await withTimeout(this.flush(), timeoutMs, 'journal flush').catch(() => undefined);
  }

  private enqueue(e: Entry): void {
    this.queue.push(e);
    let b = this.buffered.get(e.id);
    if (!b) this.buffered.set(e.id, (b = new Map()));
    for (const r of e.rcpts) b.set(r.toLowerCase(), e.marker);
    if (!this.timer && !this.flushing) this.schedule(this.delay);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().then((ok) => {
        if (this.closed || this.queue.length === 0) return;
        this.delay = ok ? this.retryMinMs : Math.min(this.delay * 2, this.retryMaxMs);
        this.schedule(this.delay);
      });
    }, ms);
    this.timer.unref();
  }

  /** True when the queue was emptied. */
  private async flush(): Promise<boolean> {
    if (this.flushing) return false;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const e = this.queue[0]!;
        try {
          await withTimeout(this.markers.mark(e.id, e.rcpts, e.marker), this.writeTimeoutMs, 'redis write');
        } catch {
          return false;
        }
        this.queue.shift();
        const b = this.buffered.get(e.id);
        if (b) {
          for (const r of e.rcpts) if (b.get(r.toLowerCase()) === e.marker) b.delete(r.toLowerCase());
          if (b.size === 0) this.buffered.delete(e.id);
        }
      }
      this.truncate();
      this.opts.log?.info('outcome journal flushed to redis');
      return true;
    } finally {
      this.flushing = false;
    }
  }

  private append(e: Entry): void {
    mkdirSync(path.dirname(this.opts.file), { recursive: true });
    const fd = openSync(this.opts.file, 'a');
    try {
      writeSync(fd, JSON.stringify(e) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  private truncate(): void {
    if (this.queue.length > 0) return;
    try {
      if (existsSync(this.opts.file)) truncateSync(this.opts.file, 0);
    } catch (err) {
      this.opts.log?.warn({ err: (err as Error).message }, 'outcome journal file could not be truncated');
    }
  }

  private replay(): void {
    if (!existsSync(this.opts.file)) return;
    let n = 0;
    for (const line of readFileSync(this.opts.file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as Entry;
        if (typeof e.id === 'string' && Array.isArray(e.rcpts) && e.marker) {
          this.enqueue(e);
          n++;
        }
      } catch {
        // A torn last line (crash mid-append): its record is covered by the pending mark.
      }
    }
    if (n > 0) this.opts.log?.warn({ records: n, file: this.opts.file }, 'outcome journal replayed: writing to redis');
  }
}
