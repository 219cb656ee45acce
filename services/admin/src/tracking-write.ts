// The tracking store's write path: events in, one read of the messages' state and one MULTI per batch out
// (summary, per-recipient statuses, event log, indexes, the status index), and the sweep of expired index entries.
import { createHash } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type { TrackingEvent } from '@mailgate/contracts';
import { domainOf, midKey, norm } from './tracking-keys.js';
import {
  authClass,
  isPerRecipient,
  newer,
  NOTE_ONLY,
  RANK,
  rcptRecord,
  statusOf,
  subjectWords,
  toSummary,
  type RcptRecord,
} from './tracking-status.js';

/**
 * The MULTI of one batch. Index trims and key expiries are the same for every event that touches a key, so each is
 * queued once, after all the batch's writes (a trim before a later ZADD of an old entry would miss it): a batch of
 * a hundred events trims `trk:idx:rcptdom:example.test` once, not a hundred times.
 */
class BatchWrites {
  private readonly expiries = new Map<string, number>();
  private readonly trims = new Map<string, number>();

  constructor(readonly multi: ChainableCommander) {}

  /** EXPIRE key ttl at the end of the batch (the longest ttl asked for wins). */
  expire(key: string, ttl: number): void {
    this.expiries.set(key, Math.max(ttl, this.expiries.get(key) ?? 0));
  }

  /** ZREMRANGEBYSCORE key -inf horizon at the end of the batch. */
  trim(key: string, horizon: number): void {
    this.trims.set(key, Math.max(horizon, this.trims.get(key) ?? -Infinity));
  }

  async exec(): Promise<void> {
    for (const [key, horizon] of this.trims) this.multi.zremrangebyscore(key, '-inf', horizon);
    for (const [key, ttl] of this.expiries) this.multi.expire(key, ttl);
    await this.multi.exec();
  }
}

/** A message's stored hashes: its summary (trk:msg) and its recipients' statuses (trk:rcpt). */
interface MessageState {
  msgHash: Record<string, string>;
  rcptHash: Record<string, string>;
}

export class TrackingWriter {
  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
    private readonly refusedTtlSeconds: number,
  ) {}

  /**
   * Store events in their order (idempotent, like add()) with one round trip that reads the state of every message
   * they name and one MULTI that writes them all: the admin's ingest hands over a fetched batch at a time. Events
   * of one message arrive in order on one partition with one writer each, so reading first and deciding in memory
   * (each event sees the state the previous ones left) does not race.
   */
  async addBatch(events: readonly TrackingEvent[]): Promise<void> {
    if (events.length === 0) return;
    const ids = [...new Set(events.map((e) => e.messageId))];
    const p = this.redis.pipeline();
    for (const id of ids) p.hgetall(`trk:msg:${id}`).hgetall(`trk:rcpt:${id}`);
    const res = (await p.exec()) ?? [];
    const state = new Map<string, MessageState>();
    ids.forEach((id, i) => {
      const [errH, h] = res[2 * i] ?? [];
      const [errR, rr] = res[2 * i + 1] ?? [];
      if (errH || errR) throw errH ?? errR;
      state.set(id, {
        msgHash: (h as Record<string, string> | null) ?? {},
        rcptHash: (rr as Record<string, string> | null) ?? {},
      });
    });
    const w = new BatchWrites(this.redis.multi());
    for (const e of events) state.set(e.messageId, this.write(w, e, state.get(e.messageId)!));
    await w.exec();
  }

  /** Queues one event's writes on `m`, given the message's state before it; returns the state after it. */
  private write(w: BatchWrites, e: TrackingEvent, before: MessageState): MessageState {
    const m = w.multi;
    const id = e.messageId;
    const json = JSON.stringify(e);
    const digest = createHash('sha1').update(json).digest('base64url');
    const at = Date.parse(e.at) || Date.now();
    const key = `trk:msg:${id}`;
    const perRcpt = isPerRecipient(e);
    const note = NOTE_ONLY.has(e.type);
    const rcpts = note ? [] : (e.rcptTo ?? []);
    const refusal = e.type === 'refused';
    const prev = before.msgHash;
    const prevRcptAll = before.rcptHash;
    const { firstSeenMs: prevFirst, updatedAtMs: prevAt, rank: prevRank, rcptTo: prevRcpts, idx: prevIdx } = prev;
    const prevRcptRecs = perRcpt ? rcpts.map((r) => prevRcptAll[norm(r)]) : [];
    // The message's time is its earliest event (events of one message can arrive slightly out of order).
    const first = prevFirst ? Math.min(Number(prevFirst), at) : at;
    // Index entries this message already has at this score need no second write (ZADD of the same member and
    // score changes nothing): a stage event repeats the envelope, and re-adding it to every index was most of the
    // store's Redis commands. A new first-seen time, a `received` or a refusal writes all of its indexes as before.
    const known = !!prevFirst && first === Number(prevFirst) && e.type !== 'received' && !refusal;
    const summary: Record<string, string> = { firstSeenMs: String(first), firstSeen: new Date(first).toISOString() };
    if (e.mailFrom !== undefined) summary['mailFrom'] = e.mailFrom;
    // Recipients are the union of what the events named (a per-recipient event names a subset; never shrink).
    const knownRcpts = prevRcpts ? (JSON.parse(prevRcpts) as string[]) : [];
    const seen = new Set(knownRcpts.map(norm));
    const added = rcpts.filter((r) => !seen.has(norm(r)) && seen.add(norm(r)));
    if (added.length) summary['rcptTo'] = JSON.stringify([...knownRcpts, ...added]);
    const indexedRcpts = new Set(known ? knownRcpts.map(norm) : []);
    if (e.clientIp) summary['clientIp'] = e.clientIp;
    if (e.traceId && !/^0+$/.test(e.traceId)) summary['traceId'] = e.traceId;
    const indexes = known ? [] : ['trk:idx:time'];
    if (e.type === 'received') {
      summary['ingressHost'] = e.host;
      const d = e.details ?? {};
      if (typeof d['size'] === 'number') summary['size'] = String(d['size']);
      if (typeof d['subject'] === 'string') {
        summary['subject'] = d['subject'];
        for (const w of subjectWords(d['subject'])) indexes.push(`trk:idx:word:${w}`);
      }
      if (typeof d['messageIdHeader'] === 'string' && d['messageIdHeader']) {
        summary['messageIdHeader'] = d['messageIdHeader'];
        indexes.push(midKey(d['messageIdHeader']));
      }
      const cls = authClass(d['auth']);
      summary['auth'] = cls;
      indexes.push(`trk:idx:auth:${cls}`);
    } else if (refusal && e.details?.['reason'] === 'sender-auth' && /^5/.test(String(e.details['reply'] ?? ''))) {
      // Refused at MAIL FROM (SPF -all) or end of DATA (DMARC p=reject): the forgeries `auth=fail` is for. A 4xx
      // (DNS temperror) decided nothing and is not classed.
      summary['auth'] = 'fail';
      indexes.push('trk:idx:auth:fail');
    }
    // The message-level status follows the latest message-level event; for events in the same millisecond the more
    // final one wins. A replayed old event compares lower and changes nothing.
    const rank = RANK[e.type] ?? 1;
    if (
      !perRcpt &&
      !note &&
      newer({ atMs: at, rank }, prevAt ? { atMs: Number(prevAt), rank: Number(prevRank ?? 0) } : undefined)
    ) {
      Object.assign(summary, {
        status: statusOf(e),
        updatedAt: new Date(at).toISOString(),
        updatedAtMs: String(at),
        rank: String(rank),
      });
    }
    const rcptUpdates: Record<string, string> = {};
    if (perRcpt) {
      rcpts.forEach((r, i) => {
        const rec = rcptRecord(e, r, at);
        const prev = prevRcptRecs[i] ? (JSON.parse(prevRcptRecs[i]!) as RcptRecord) : undefined;
        if (newer(rec, prev)) rcptUpdates[norm(r)] = JSON.stringify(rec);
      });
      if (Object.keys(rcptUpdates).length && (!prevAt || at > Number(prevAt))) {
        // updatedAt is the time of the latest news about the message, whoever it was about.
        Object.assign(summary, { updatedAt: new Date(at).toISOString() });
      }
    }
    if (e.mailFrom !== undefined && !(known && prev['mailFrom'] === e.mailFrom)) {
      indexes.push(`trk:idx:from:${norm(e.mailFrom)}`);
      const d = domainOf(e.mailFrom);
      if (d) indexes.push(`trk:idx:fromdom:${d}`);
    }
    for (const r of rcpts) {
      if (indexedRcpts.has(norm(r))) continue;
      indexes.push(`trk:idx:rcpt:${norm(r)}`);
      const d = domainOf(r);
      if (d) indexes.push(`trk:idx:rcptdom:${d}`);
    }
    if (e.clientIp && !(known && prev['clientIp'] === e.clientIp)) indexes.push(`trk:idx:ip:${e.clientIp}`);
    // A refusal entry's keys outlive its retention by a day: the sweep needs its `idx` list to unindex it.
    const ttl = refusal ? this.refusedTtlSeconds + 86400 : this.ttlSeconds;
    if (refusal) {
      indexes.push('trk:idx:refused');
      const all = new Set([...(prevIdx ? (JSON.parse(prevIdx) as string[]) : []), ...indexes]);
      summary['idx'] = JSON.stringify([...all]);
    }
    const horizon = Date.now() - this.ttlSeconds * 1000;
    m.hset(`trk:ev:${id}`, digest, json);
    w.expire(`trk:ev:${id}`, ttl);
    m.hset(key, summary);
    w.expire(key, ttl);
    if (Object.keys(rcptUpdates).length) {
      m.hset(`trk:rcpt:${id}`, rcptUpdates);
      w.expire(`trk:rcpt:${id}`, ttl);
    }
    for (const idx of new Set(indexes)) {
      m.zadd(idx, first, id);
      if (idx !== 'trk:idx:time') {
        w.trim(idx, horizon);
        w.expire(idx, this.ttlSeconds);
      }
    }
    const after: MessageState = { msgHash: { ...prev, ...summary }, rcptHash: { ...prevRcptAll, ...rcptUpdates } };
    if (!refusal) this.reindexStatus(w, id, first, after);
    return after;
  }

  /**
   * Keep the message under its current status in trk:idx:status:* (the status a search shows: the recipients'
   * aggregate, computed from the state this write leaves: the hashes as read plus this event's updates). Records
   * the move in `s.msgHash` (sidx, sidxAt) as it writes it.
   */
  private reindexStatus(w: BatchWrites, id: string, first: number, s: MessageState): void {
    const m = w.multi;
    const h = s.msgHash;
    const status = toSummary(id, h, s.rcptHash).status;
    // The index entry is at the message's first-seen score: a new earlier time moves it too.
    if (h['sidx'] === status && String(first) === h['sidxAt']) return;
    if (h['sidx'] && h['sidx'] !== status) m.zrem(`trk:idx:status:${h['sidx']}`, id);
    m.zadd(`trk:idx:status:${status}`, first, id);
    w.trim(`trk:idx:status:${status}`, Date.now() - this.ttlSeconds * 1000);
    w.expire(`trk:idx:status:${status}`, this.ttlSeconds);
    m.hset(`trk:msg:${id}`, 'sidx', status, 'sidxAt', String(first));
    h['sidx'] = status;
    h['sidxAt'] = String(first);
  }

  /**
   * Drop index entries older than the retention (the per-message keys expire by themselves), and refusal entries
   * older than the refusal retention from every index they are in. Returns how many entries went.
   */
  async sweep(now = Date.now()): Promise<number> {
    let n = await this.redis.zremrangebyscore('trk:idx:time', '-inf', now - this.ttlSeconds * 1000);
    const horizon = now - this.refusedTtlSeconds * 1000;
    for (;;) {
      const ids = await this.redis.zrangebyscore('trk:idx:refused', '-inf', horizon, 'LIMIT', 0, 500);
      if (ids.length === 0) return n;
      const p = this.redis.pipeline();
      for (const id of ids) p.hget(`trk:msg:${id}`, 'idx');
      const idx = ((await p.exec()) ?? []).map(([, v]) => (v ? (JSON.parse(v as string) as string[]) : []));
      const m = this.redis.multi();
      ids.forEach((id, i) => {
        for (const k of new Set([...idx[i]!, 'trk:idx:time', 'trk:idx:refused'])) m.zrem(k, id);
        m.del(`trk:msg:${id}`, `trk:ev:${id}`, `trk:rcpt:${id}`);
      });
      await m.exec();
      n += ids.length;
    }
  }
}
