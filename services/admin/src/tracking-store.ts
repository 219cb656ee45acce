// The message tracking store (Redis layout: tracking-keys.ts). This file is the one import path for it: the
// TrackingStore that ingest writes and every search reads, composed of the write path (tracking-write.ts), the
// query path (tracking-query.ts) and the pure status rules they share (tracking-status.ts).
import type { Redis } from 'ioredis';
import type { TrackingEvent } from '@mailgate/contracts';
import { TrackingQueries, type SearchQuery } from './tracking-query.js';
import type { MessageSummary } from './tracking-status.js';
import { TrackingWriter, type EventRecord, type TrackingWriteError } from './tracking-write.js';

export {
  AUTH_CLASSES,
  aggregateStatus,
  authClass,
  subjectWords,
  type AuthClass,
  type MessageSummary,
  type RecipientStatus,
} from './tracking-status.js';
export type { EventRecord, TrackingWriteError } from './tracking-write.js';
export { BadCursorError, SEARCH_STATUSES, type SearchQuery, type SearchStatus } from './tracking-query.js';

export class TrackingStore {
  private readonly writer: TrackingWriter;
  private readonly queries: TrackingQueries;

  /**
   * `onWriteError`: a write Redis refused inside a batch's transaction (e.g. a key of another type under the
   * store's prefix). The batch's other writes stand and it is not retried (it would fail the same way and hold up
   * every later event): the service logs and counts it (mailgate_tracking_write_errors_total).
   */
  constructor(
    redis: Redis,
    retentionDays: number,
    refusedRetentionDays = retentionDays,
    opts: { onWriteError?: (e: TrackingWriteError) => void } = {},
  ) {
    const ttlSeconds = Math.ceil(retentionDays * 86400);
    const refusedTtlSeconds = Math.ceil(Math.min(refusedRetentionDays, retentionDays) * 86400);
    this.writer = new TrackingWriter(redis, ttlSeconds, refusedTtlSeconds, opts.onWriteError);
    this.queries = new TrackingQueries(redis);
  }

  /** Store one event (idempotent: storing the same event twice changes nothing). */
  async add(e: TrackingEvent): Promise<void> {
    await this.writer.addBatch([e]);
  }

  /** Store events in their order, idempotent like add(), in one read and one MULTI (TrackingWriter.addBatch). */
  addBatch(events: readonly TrackingEvent[]): Promise<void> {
    return this.writer.addBatch(events);
  }

  /** addBatch() of records as read from the events topic (the ingest): each event's JSON text is stored as is. */
  addRecords(records: readonly EventRecord[]): Promise<void> {
    return this.writer.addRecords(records);
  }

  get(id: string): Promise<{ summary: MessageSummary; events: TrackingEvent[] } | null> {
    return this.queries.get(id);
  }

  /** Newest first; criteria combine (AND). See TrackingQueries.search. */
  search(q: SearchQuery, maxResults: number): Promise<MessageSummary[]> {
    return this.queries.search(q, maxResults);
  }

  /** One page of a search and the cursor of the next one (absent on the last page). See TrackingQueries.page. */
  page(q: SearchQuery, maxResults: number): Promise<{ results: MessageSummary[]; nextCursor?: string }> {
    return this.queries.page(q, maxResults);
  }

  /** Per-window counts of all entries and of the refusals among them (the console dashboard). */
  bucketCounts(from: number, step: number, buckets: number): Promise<{ all: number[]; refused: number[] }> {
    return this.queries.bucketCounts(from, step, buckets);
  }

  /** Drop index entries older than the retentions; returns how many went. See TrackingWriter.sweep. */
  sweep(now = Date.now()): Promise<number> {
    return this.writer.sweep(now);
  }
}
