// The tracking store's query path: a message by id, a search page (criteria → index keys, cursor paging in the
// first-seen order) and the dashboard's per-window counts. Reads only; the keys are those of tracking-keys.ts.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { TrackingEvent } from '@mailgate/contracts';
import { addressIndex, midKey, norm } from './tracking-keys.js';
import { RANK, subjectWords, toSummary, type AuthClass, type MessageSummary } from './tracking-status.js';

/** Every message status a search can ask for (the values MessageSummary.status takes). */
export const SEARCH_STATUSES = [
  'in-pipeline',
  'held',
  'quarantined',
  'dead-lettered',
  'released',
  'deferred',
  'partially-delivered',
  'delivered',
  'bounced',
  'deleted',
  'refused',
] as const;
export type SearchStatus = (typeof SEARCH_STATUSES)[number];

export interface SearchQuery {
  /** Recipient address, or `@domain` for every recipient of a domain. */
  readonly rcpt?: string | undefined;
  /** Sender address, `@domain`, or `<>` for the null sender. */
  readonly from?: string | undefined;
  /** Client IP as ingress saw it. */
  readonly ip?: string | undefined;
  /** The Message-ID header, with or without <>. */
  readonly messageId?: string | undefined;
  /** Words of the Subject; every word must be in it (case-insensitive, whole words). */
  readonly subject?: string | undefined;
  /** Opaque, from a previous page's `nextCursor`. */
  readonly cursor?: string | undefined;
  /** The message's current status (MessageSummary.status); `refused` = SMTP-time refusals. */
  readonly status?: SearchStatus | undefined;
  /** Sender authentication class (see authClass). */
  readonly auth?: AuthClass | undefined;
  /** Time range (ms since the epoch) of the message's first event. */
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  readonly limit?: number | undefined;
}

export class BadCursorError extends Error {
  readonly http = 400;
}

/** A position in a search's first-seen order. On the wire (the opaque `nextCursor`) it is `{"s":score,"k":ties}`. */
interface Cursor {
  /** Score (first-seen ms) of the last result returned. */
  score: number;
  /** How many results with exactly that score were returned so far (ties continue after them). */
  ties: number;
}

function decodeCursor(c: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as { s: number; k: number };
    if (Number.isFinite(v.s) && Number.isInteger(v.k) && v.k >= 0) return { score: v.s, ties: v.k };
  } catch {
    // fall through
  }
  throw new BadCursorError('malformed cursor');
}
const encodeCursor = (c: Cursor) => Buffer.from(JSON.stringify({ s: c.score, k: c.ties })).toString('base64url');

export class TrackingQueries {
  constructor(private readonly redis: Redis) {}

  async get(id: string): Promise<{ summary: MessageSummary; events: TrackingEvent[] } | null> {
    const [h, evs, rr] = await Promise.all([
      this.redis.hgetall(`trk:msg:${id}`),
      this.redis.hvals(`trk:ev:${id}`),
      this.redis.hgetall(`trk:rcpt:${id}`),
    ]);
    if (!h || Object.keys(h).length === 0) return null;
    const events = evs
      .map((s) => JSON.parse(s) as TrackingEvent)
      .sort((a, b) => a.at.localeCompare(b.at) || (RANK[a.type] ?? 1) - (RANK[b.type] ?? 1));
    return { summary: toSummary(id, h, rr), events };
  }

  /**
   * Newest first. Criteria combine (AND). An address searches that exact address; `@domain` (or a bare domain)
   * searches every address of the domain. Searching one recipient address, each result's `status` is that
   * recipient's own status.
   */
  async search(q: SearchQuery, maxResults: number): Promise<MessageSummary[]> {
    return (await this.page(q, maxResults)).results;
  }

  /**
   * One page of a search, and the cursor of the next one (absent on the last page). The cursor is a position in
   * the first-seen order (score and ties), so pages neither repeat nor skip entries while new mail arrives.
   */
  async page(q: SearchQuery, maxResults: number): Promise<{ results: MessageSummary[]; nextCursor?: string }> {
    const keys: string[] = [];
    if (q.rcpt) keys.push(addressIndex('rcpt', q.rcpt));
    // '<>' is a real query: the null sender (bounces, DSNs).
    if (q.from) keys.push(q.from.trim() === '<>' ? 'trk:idx:from:' : addressIndex('from', q.from));
    if (q.ip) keys.push(`trk:idx:ip:${q.ip.trim()}`);
    if (q.messageId?.trim()) keys.push(midKey(q.messageId));
    if (q.subject !== undefined) {
      const words = subjectWords(q.subject);
      if (words.length === 0) return { results: [] };
      for (const w of words) keys.push(`trk:idx:word:${w}`);
    }
    if (q.status === 'refused') keys.push('trk:idx:refused');
    else if (q.status) keys.push(`trk:idx:status:${q.status}`);
    if (q.auth) keys.push(`trk:idx:auth:${q.auth}`);
    const limit = Math.max(1, Math.min(q.limit ?? 50, maxResults));
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    let key = keys[0] ?? 'trk:idx:time';
    let temp: string | undefined;
    if (keys.length > 1) {
      temp = `trk:tmp:${randomUUID()}`;
      // Scores are the same first-seen time in every index: MIN keeps it.
      await this.redis
        .multi()
        .zinterstore(temp, keys.length, ...keys, 'AGGREGATE', 'MIN')
        .expire(temp, 30)
        .exec();
      key = temp;
    }
    const oneRcpt = q.rcpt && addressIndex('rcpt', q.rcpt).startsWith('trk:idx:rcpt:') ? norm(q.rcpt) : undefined;
    try {
      const max = cursor ? Math.min(cursor.score, q.until ?? Infinity) : (q.until ?? '+inf');
      const skip = cursor && cursor.score === max ? cursor.ties : 0;
      const flat = await this.redis.zrevrangebyscore(
        key,
        max === Infinity ? '+inf' : max,
        q.since ?? '-inf',
        'WITHSCORES',
        'LIMIT',
        skip,
        limit + 1,
      );
      const hits: { id: string; score: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) hits.push({ id: flat[i]!, score: Number(flat[i + 1]) });
      const more = hits.length > limit;
      const pageHits = hits.slice(0, limit);
      let nextCursor: string | undefined;
      if (more && pageHits.length) {
        const last = pageHits[pageHits.length - 1]!.score;
        const ties = pageHits.filter((h) => h.score === last).length;
        nextCursor = encodeCursor({ score: last, ties: ties + (last === max ? skip : 0) });
      }
      const ids = pageHits.map((h) => h.id);
      const p = this.redis.pipeline();
      for (const id of ids) p.hgetall(`trk:msg:${id}`).hgetall(`trk:rcpt:${id}`);
      const res = (await p.exec()) ?? [];
      const out: MessageSummary[] = [];
      ids.forEach((id, i) => {
        const h = res[2 * i]?.[1] as Record<string, string> | undefined;
        const rr = res[2 * i + 1]?.[1] as Record<string, string> | undefined;
        if (!h || Object.keys(h).length === 0) return;
        const s = toSummary(id, h, rr ?? {});
        const mine = oneRcpt ? s.recipients.find((r) => norm(r.rcpt) === oneRcpt) : undefined;
        out.push(mine ? { ...s, status: mine.status } : s);
      });
      return nextCursor ? { results: out, nextCursor } : { results: out };
    } finally {
      if (temp) await this.redis.del(temp);
    }
  }

  /**
   * Entries first seen in each of `buckets` consecutive windows [from + i·step, from + (i+1)·step): all of them
   * (the time index) and the SMTP-time refusals among them — the console dashboard's throughput and rejects.
   * One pipelined ZCOUNT per window and index.
   */
  async bucketCounts(from: number, step: number, buckets: number): Promise<{ all: number[]; refused: number[] }> {
    const p = this.redis.pipeline();
    for (let i = 0; i < buckets; i++) {
      const lo = String(from + i * step);
      const hi = `(${from + (i + 1) * step}`;
      p.zcount('trk:idx:time', lo, hi).zcount('trk:idx:refused', lo, hi);
    }
    const r = ((await p.exec()) ?? []).map(([err, n]) => {
      if (err) throw err;
      return Number(n);
    });
    return { all: r.filter((_, i) => i % 2 === 0), refused: r.filter((_, i) => i % 2 === 1) };
  }
}
