import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { TrackingEvent, TrackingEventType } from '@mailgate/contracts';

/**
 * The message tracking store: every tracking event, indexed so "where is the mail from bob@partner.com sent at
 * 10:02?" is one query. Redis layout (under the configured key prefix):
 *   trk:msg:<id>        hash   summary (sender, recipients, client IP, trace id, status, times)
 *   trk:ev:<id>         list   the events (JSON), in arrival order
 *   trk:seen:<id>       set    digests of events already stored (events are at-least-once: redelivery is a no-op)
 *   trk:idx:time        zset   id by received time (ms)
 *   trk:idx:{rcpt,from,ip}:<value>  zset   id by received time
 * Every key expires after the retention period; the time index is trimmed by a periodic sweep.
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
  readonly rcpt?: string | undefined;
  readonly from?: string | undefined;
  readonly ip?: string | undefined;
  /** ISO or ms. */
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

const norm = (s: string) => s.trim().toLowerCase();

export class TrackingStore {
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionDays: number,
  ) {
    this.ttlSeconds = Math.ceil(retentionDays * 86400);
  }

  /** Store one event (idempotent). */
  async add(e: TrackingEvent): Promise<void> {
    const id = e.messageId;
    const json = JSON.stringify(e);
    const digest = createHash('sha1').update(json).digest('base64url');
    const fresh = await this.redis.sadd(`trk:seen:${id}`, digest);
    if (fresh === 0) return;
    const at = Date.parse(e.at) || Date.now();
    const m = this.redis.multi();
    m.expire(`trk:seen:${id}`, this.ttlSeconds);
    m.rpush(`trk:ev:${id}`, json);
    m.expire(`trk:ev:${id}`, this.ttlSeconds);
    const summary: Record<string, string> = {};
    if (e.mailFrom !== undefined) summary['mailFrom'] = e.mailFrom;
    if (e.rcptTo) summary['rcptTo'] = JSON.stringify(e.rcptTo);
    if (e.clientIp) summary['clientIp'] = e.clientIp;
    if (e.traceId) summary['traceId'] = e.traceId;
    if (e.type === 'received') summary['ingressHost'] = e.host;
    if (Object.keys(summary).length) m.hset(`trk:msg:${id}`, summary);
    m.hsetnx(`trk:msg:${id}`, 'firstSeen', new Date(at).toISOString());
    m.hsetnx(`trk:msg:${id}`, 'firstSeenMs', String(at));
    m.expire(`trk:msg:${id}`, this.ttlSeconds);
    await m.exec();
    await this.updateStatus(id, e, at);
    // Index under the message's first-seen time so a search by time finds it once.
    const first = Number((await this.redis.hget(`trk:msg:${id}`, 'firstSeenMs')) ?? at);
    const idx = this.redis.multi();
    idx.zadd('trk:idx:time', first, id);
    if (e.mailFrom !== undefined) idx.zadd(`trk:idx:from:${norm(e.mailFrom)}`, first, id);
    for (const r of e.rcptTo ?? []) idx.zadd(`trk:idx:rcpt:${norm(r)}`, first, id);
    if (e.clientIp) idx.zadd(`trk:idx:ip:${e.clientIp}`, first, id);
    for (const key of [
      ...(e.mailFrom !== undefined ? [`trk:idx:from:${norm(e.mailFrom)}`] : []),
      ...(e.rcptTo ?? []).map((r) => `trk:idx:rcpt:${norm(r)}`),
      ...(e.clientIp ? [`trk:idx:ip:${e.clientIp}`] : []),
    ])
      idx.expire(key, this.ttlSeconds);
    await idx.exec();
  }

  /** Status follows the latest event in time (events of one message can arrive slightly out of order). */
  private async updateStatus(id: string, e: TrackingEvent, at: number): Promise<void> {
    const key = `trk:msg:${id}`;
    const prev = Number((await this.redis.hget(key, 'updatedAtMs')) ?? 0);
    if (at < prev) return;
    let status = STATUS_OF[e.type] ?? e.type;
    if (e.type === 'stage') {
      const kind = (e.details?.['verdict'] as { kind?: string } | undefined)?.kind;
      if (kind === 'tempfail') status = 'held';
    }
    await this.redis.hset(key, { status, updatedAt: new Date(at).toISOString(), updatedAtMs: String(at) });
  }

  async get(id: string): Promise<{ summary: MessageSummary; events: TrackingEvent[] } | null> {
    const [h, evs] = await Promise.all([this.redis.hgetall(`trk:msg:${id}`), this.redis.lrange(`trk:ev:${id}`, 0, -1)]);
    if (!h || Object.keys(h).length === 0) return null;
    const events = evs.map((s) => JSON.parse(s) as TrackingEvent).sort((a, b) => a.at.localeCompare(b.at));
    return { summary: toSummary(id, h), events };
  }

  async search(q: SearchQuery, maxResults: number): Promise<MessageSummary[]> {
    const key = q.rcpt
      ? `trk:idx:rcpt:${norm(q.rcpt)}`
      : q.from !== undefined
        ? `trk:idx:from:${norm(q.from)}`
        : q.ip
          ? `trk:idx:ip:${q.ip}`
          : 'trk:idx:time';
    const limit = Math.min(q.limit ?? 50, maxResults);
    const ids = await this.redis.zrevrangebyscore(
      key,
      q.until ?? '+inf',
      q.since ?? '-inf',
      'LIMIT',
      0,
      limit,
    );
    const rows = await Promise.all(ids.map(async (id) => [id, await this.redis.hgetall(`trk:msg:${id}`)] as const));
    return rows.filter(([, h]) => h && Object.keys(h).length > 0).map(([id, h]) => toSummary(id, h));
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
