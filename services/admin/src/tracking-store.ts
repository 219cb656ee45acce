import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { TrackingEvent, TrackingEventType } from '@mailgate/contracts';

/**
 * The message tracking store: every tracking event, indexed so "where is the mail from bob@partner.com sent at
 * 10:02?" is one query. Redis layout (under the configured key prefix):
 *   trk:msg:<id>        hash   summary (sender, recipients, client IP, trace id, status, times)
 *   trk:ev:<id>         hash   event digest → event JSON (events are at-least-once: a redelivered event lands on
 *                              the same field, so every write is idempotent and one MULTI stores an event whole)
 *   trk:idx:time        zset   id by first-seen time (ms)
 *   trk:idx:{rcpt,from,ip}:<value>        zset   id by first-seen time
 *   trk:idx:{rcptdom,fromdom}:<domain>   zset   id by first-seen time (search by "@partner.com")
 * Every key expires after the retention period; index entries older than it are trimmed on each write to the
 * index (and the time index by a periodic sweep), so a busy recipient's index does not grow for ever.
 */
export interface MessageSummary {
  readonly id: string;
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly clientIp: string;
  readonly traceId: string;
  readonly status: string;
  readonly firstSeen: string;
  readonly updatedAt: string;
  readonly ingressHost: string;
}

export interface SearchQuery {
  /** Recipient address, or `@domain` for every recipient of a domain. */
  readonly rcpt?: string | undefined;
  /** Sender address, `@domain`, or `<>` for the null sender. */
  readonly from?: string | undefined;
  /** Client IP as ingress saw it. */
  readonly ip?: string | undefined;
  /** Time range (ms since the epoch) of the message's first event. */
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  readonly limit?: number | undefined;
}

const STATUS_OF: Record<TrackingEventType, string> = {
  received: 'in-pipeline',
  refused: 'refused',
  stage: 'in-pipeline',
  quarantined: 'quarantined',
  delivered: 'delivered',
  deferred: 'deferred',
  bounced: 'bounced',
  'dsn-generated': 'bounced',
  'dead-lettered': 'dead-lettered',
  released: 'released',
  deleted: 'deleted',
};

/** Tie-break for events in the same millisecond: the more final wins the status. */
const RANK: Partial<Record<TrackingEventType, number>> = {
  received: 0,
  refused: 0,
  stage: 1,
  released: 2,
  deferred: 2,
  quarantined: 3,
  'dead-lettered': 3,
  delivered: 4,
  bounced: 4,
  'dsn-generated': 4,
  deleted: 5,
};

function statusOf(e: TrackingEvent): string {
  if (e.type === 'stage') {
    const kind = (e.details?.['verdict'] as { kind?: string } | undefined)?.kind;
    if (kind === 'tempfail') return 'held';
  }
  return STATUS_OF[e.type] ?? e.type;
}

const norm = (s: string) =>
  s
    .trim()
    .toLowerCase()
    .replace(/^<(.*)>$/, '$1');

function domainOf(address: string): string | null {
  const a = norm(address);
  const i = a.lastIndexOf('@');
  return i >= 0 && i < a.length - 1 ? a.slice(i + 1) : null;
}

/** `bob@x.test` → the address index; `@x.test` or `x.test` → the domain index. */
function addressIndex(field: 'rcpt' | 'from', q: string): string {
  const v = norm(q);
  if (v.startsWith('@')) return `trk:idx:${field}dom:${v.slice(1)}`;
  if (!v.includes('@')) return `trk:idx:${field}dom:${v}`;
  return `trk:idx:${field}:${v}`;
}

export class TrackingStore {
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionDays: number,
  ) {
    this.ttlSeconds = Math.ceil(retentionDays * 86400);
  }

  /** Store one event (idempotent: storing the same event twice changes nothing). */
  async add(e: TrackingEvent): Promise<void> {
    const id = e.messageId;
    const json = JSON.stringify(e);
    const digest = createHash('sha1').update(json).digest('base64url');
    const at = Date.parse(e.at) || Date.now();
    const key = `trk:msg:${id}`;
    const [prevFirst, prevAt, prevRank] = await this.redis.hmget(key, 'firstSeenMs', 'updatedAtMs', 'rank');
    // The message's time is its earliest event (events of one message can arrive slightly out of order).
    const first = prevFirst ? Math.min(Number(prevFirst), at) : at;
    const summary: Record<string, string> = { firstSeenMs: String(first), firstSeen: new Date(first).toISOString() };
    if (e.mailFrom !== undefined) summary['mailFrom'] = e.mailFrom;
    if (e.rcptTo?.length) summary['rcptTo'] = JSON.stringify(e.rcptTo);
    if (e.clientIp) summary['clientIp'] = e.clientIp;
    if (e.traceId && !/^0+$/.test(e.traceId)) summary['traceId'] = e.traceId;
    if (e.type === 'received') summary['ingressHost'] = e.host;
    // Status follows the latest event; for events in the same millisecond the more final one wins. A replayed
    // old event compares lower and changes nothing.
    const rank = RANK[e.type] ?? 1;
    if (!prevAt || at > Number(prevAt) || (at === Number(prevAt) && rank >= Number(prevRank ?? 0))) {
      Object.assign(summary, {
        status: statusOf(e),
        updatedAt: new Date(at).toISOString(),
        updatedAtMs: String(at),
        rank: String(rank),
      });
    }
    const indexes = ['trk:idx:time'];
    if (e.mailFrom !== undefined) {
      indexes.push(`trk:idx:from:${norm(e.mailFrom)}`);
      const d = domainOf(e.mailFrom);
      if (d) indexes.push(`trk:idx:fromdom:${d}`);
    }
    for (const r of e.rcptTo ?? []) {
      indexes.push(`trk:idx:rcpt:${norm(r)}`);
      const d = domainOf(r);
      if (d) indexes.push(`trk:idx:rcptdom:${d}`);
    }
    if (e.clientIp) indexes.push(`trk:idx:ip:${e.clientIp}`);
    const horizon = Date.now() - this.ttlSeconds * 1000;
    const m = this.redis.multi();
    m.hset(`trk:ev:${id}`, digest, json);
    m.expire(`trk:ev:${id}`, this.ttlSeconds);
    m.hset(key, summary);
    m.expire(key, this.ttlSeconds);
    for (const idx of new Set(indexes)) {
      m.zadd(idx, first, id);
      if (idx !== 'trk:idx:time') {
        m.zremrangebyscore(idx, '-inf', horizon);
        m.expire(idx, this.ttlSeconds);
      }
    }
    await m.exec();
  }

  async get(id: string): Promise<{ summary: MessageSummary; events: TrackingEvent[] } | null> {
    const [h, evs] = await Promise.all([this.redis.hgetall(`trk:msg:${id}`), this.redis.hvals(`trk:ev:${id}`)]);
    if (!h || Object.keys(h).length === 0) return null;
    const events = evs
      .map((s) => JSON.parse(s) as TrackingEvent)
      .sort((a, b) => a.at.localeCompare(b.at) || (RANK[a.type] ?? 1) - (RANK[b.type] ?? 1));
    return { summary: toSummary(id, h), events };
  }

  /**
   * Newest first. Criteria combine (AND). An address searches that exact address; `@domain` (or a bare domain)
   * searches every address of the domain.
   */
  async search(q: SearchQuery, maxResults: number): Promise<MessageSummary[]> {
    const keys: string[] = [];
    if (q.rcpt) keys.push(addressIndex('rcpt', q.rcpt));
    // '<>' is a real query: the null sender (bounces, DSNs).
    if (q.from) keys.push(q.from.trim() === '<>' ? 'trk:idx:from:' : addressIndex('from', q.from));
    if (q.ip) keys.push(`trk:idx:ip:${q.ip.trim()}`);
    const limit = Math.max(1, Math.min(q.limit ?? 50, maxResults));
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
    try {
      const ids = await this.redis.zrevrangebyscore(key, q.until ?? '+inf', q.since ?? '-inf', 'LIMIT', 0, limit);
      const p = this.redis.pipeline();
      for (const id of ids) p.hgetall(`trk:msg:${id}`);
      const rows = ((await p.exec()) ?? []).map(([, h], i) => [ids[i]!, h as Record<string, string>] as const);
      return rows.filter(([, h]) => h && Object.keys(h).length > 0).map(([id, h]) => toSummary(id, h));
    } finally {
      if (temp) await this.redis.del(temp);
    }
  }

  /** Drop index entries older than the retention (the per-message keys expire by themselves). */
  async sweep(now = Date.now()): Promise<number> {
    return this.redis.zremrangebyscore('trk:idx:time', '-inf', now - this.ttlSeconds * 1000);
  }
}

function toSummary(id: string, h: Record<string, string>): MessageSummary {
  return {
    id,
    mailFrom: h['mailFrom'] ?? '',
    rcptTo: h['rcptTo'] ? (JSON.parse(h['rcptTo']) as string[]) : [],
    clientIp: h['clientIp'] ?? '',
    traceId: h['traceId'] ?? '',
    status: h['status'] ?? 'unknown',
    firstSeen: h['firstSeen'] ?? '',
    updatedAt: h['updatedAt'] ?? '',
    ingressHost: h['ingressHost'] ?? '',
  };
}
