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
 * Keys whose expiry or trim this writer set a moment ago, so the next batches need not set it again: the events of
 * one message come in several batches (received, the chain's checks, delivery), and re-setting a TTL of days every
 * few hundred milliseconds changed nothing but cost a Redis command per key and batch. A key is remembered for one
 * to two windows (two generations of maps, the older dropped at each rotation), then done again on its next write.
 * Only what a MULTI really did is recorded (after it succeeded), so a failed batch redoes everything on its retry.
 * A key can vanish within the window all the same (emptied by a trim or another replica's sweep, lost by Redis), and
 * the batch's write then creates it again without an expiry: those keys get theirs from EXPIRE_WHERE_NONE.
 */
class RecentlyDone {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private rotatedAt = Date.now();

  constructor(private readonly windowMs: number) {}

  /** Was `key` done with this `value` (a TTL; 0 for a trim) within the window? */
  has(key: string, value: number, now: number): boolean {
    this.rotate(now);
    return (this.current.get(key) ?? this.previous.get(key)) === value;
  }

  record(key: string, value: number, now: number): void {
    this.rotate(now);
    this.current.set(key, value);
  }

  /** Forget everything: the next write of each key sets it again (after a sweep deleted keys). */
  clear(): void {
    this.current.clear();
    this.previous.clear();
  }

  private rotate(now: number): void {
    if (now - this.rotatedAt < this.windowMs) return;
    this.previous = this.current;
    this.current = new Map();
    this.rotatedAt = now;
  }
}

/**
 * EXPIRE each of KEYS (ARGV: its TTL in seconds, in the same order) that has no expiry: the keys whose expiry this
 * writer set within the last minute (RecentlyDone) and so does not set again — unless the key vanished since and the
 * batch's write created it anew without one. Any key can vanish behind the writer's back: Redis deletes an index
 * that a trim or another replica's sweep emptied, a key expires, a restart or failover the connection did not notice
 * loses it; without this check the key then lived for ever. One script per batch, after the batch's writes in the
 * same MULTI, so no EXPIRE is sent for a key that still has its expiry (the round-4 savings) and none is missed.
 * `EXPIRE key ttl NX` would do the same without a script, but needs Redis 7.0 and the docs promise no such minimum.
 * A script that writes after reading a TTL needs effects replication, Redis's default since 5.0 (BullMQ, which
 * delivery uses, requires 5.0 already).
 */
const EXPIRE_WHERE_NONE = `
local n = 0
for i = 1, #KEYS do
  if redis.call('TTL', KEYS[i]) == -1 then
    redis.call('EXPIRE', KEYS[i], ARGV[i])
    n = n + 1
  end
end
return n
`;
const EXPIRE_WHERE_NONE_SHA = createHash('sha1').update(EXPIRE_WHERE_NONE).digest('hex');

/**
 * An event and the JSON text it was decoded from (an events-topic record: encodeEvent is JSON.stringify), stored as
 * its line in trk:ev and hashed for that line's field. The producers' text is what JSON.stringify of the decoded event
 * gives (parse then stringify reproduces JSON.stringify's output), so the line and its field are those the event
 * had when the store re-serialised it: a replay lands on the same field. Saves stringifying every event again.
 */
export interface EventRecord {
  readonly event: TrackingEvent;
  readonly json: string;
}

/** A command of a batch that Redis refused inside its transaction (the rest of the transaction was applied). */
export interface TrackingWriteError {
  /** The command (`hset`, `zadd`, `expire`, …; `expire-where-none` for the script) and the key it was for. */
  readonly command: string;
  readonly key: string;
  readonly error: Error;
}

/**
 * The MULTI of one batch. Index trims and key expiries are the same for every event that touches a key, so each is
 * queued once, after all the batch's writes (a trim before a later ZADD of an old entry would miss it): a batch of
 * a hundred events trims `trk:idx:rcptdom:example.test` once, not a hundred times; and not at all when this
 * writer did it within the last minute (RecentlyDone). Every command is queued with the key it is for, so a command
 * Redis refuses is reported with its key.
 */
class BatchWrites {
  private readonly expiries = new Map<string, number>();
  private readonly trims = new Map<string, number>();
  private readonly always = new Set<string>();
  private readonly found = new Set<string>();
  private readonly adds = new Map<string, (string | number)[]>();
  /** What each queued command of the MULTI was, in order: [command, key]. */
  private readonly queued: [string, string][] = [];

  constructor(
    private readonly redis: Redis,
    private readonly multi: ChainableCommander,
    /** The batch's clock: the retention horizon and the RecentlyDone windows. */
    readonly now: number,
    private readonly expired: RecentlyDone,
    private readonly trimmed: RecentlyDone,
    private readonly onError: (e: TrackingWriteError) => void,
  ) {}

  /**
   * EXPIRE key ttl at the end of the batch (the longest ttl asked for wins), unless this writer set it within the
   * last minute (RecentlyDone); then, by `known`, what may have happened to the key since:
   * - `vanished` (the default, index keys): anything, so it gets its expiry only if it has none (EXPIRE_WHERE_NONE);
   * - `always`: the key is likely to have gone and this batch creates it again without a TTL: a message's hash the
   *   batch's read found missing, or a status index (any writer's ZREM empties it, and Redis deletes it, when e.g.
   *   the last held message passes). EXPIRE it regardless;
   * - `found`: a message's hash the batch's read found a moment ago, so it has the expiry every write that creates
   *   it gives it (the read is its check). Nothing.
   */
  expire(key: string, ttl: number, known: 'vanished' | 'always' | 'found' = 'vanished'): void {
    this.expiries.set(key, Math.max(ttl, this.expiries.get(key) ?? 0));
    if (known === 'always') this.always.add(key);
    else if (known === 'found') this.found.add(key);
  }

  /**
   * ZADD key score member, with the batch's other entries of that key in one command: a batch's new messages share
   * most of their index keys (the time index, their recipients' domain, subject words, the auth class). Only for
   * keys nothing ZREMs from in a write (not the status indexes): the adds run together, before the trims.
   */
  zadd(key: string, score: number, member: string): void {
    const args = this.adds.get(key);
    if (args) args.push(score, member);
    else this.adds.set(key, [score, member]);
  }

  /** ZADD now, in the order of the other writes (the status indexes: a ZREM from one may come later). */
  zaddNow(key: string, score: number, member: string): void {
    this.queue('zadd', key).zadd(key, score, member);
  }

  zrem(key: string, member: string): void {
    this.queue('zrem', key).zrem(key, member);
  }

  hset(key: string, fieldsAndValues: string[]): void {
    this.queue('hset', key).hset(key, ...fieldsAndValues);
  }

  /** ZREMRANGEBYSCORE key -inf horizon at the end of the batch. */
  trim(key: string, horizon: number): void {
    this.trims.set(key, Math.max(horizon, this.trims.get(key) ?? -Infinity));
  }

  private queue(command: string, key: string): ChainableCommander {
    this.queued.push([command, key]);
    return this.multi;
  }

  async exec(): Promise<void> {
    const trims = [...this.trims].filter(([key]) => !this.trimmed.has(key, 0, this.now));
    const expiries: [string, number][] = [];
    const checks: [string, number][] = [];
    for (const [key, ttl] of this.expiries) {
      if (this.always.has(key) || !this.expired.has(key, ttl, this.now)) expiries.push([key, ttl]);
      else if (!this.found.has(key)) checks.push([key, ttl]);
    }
    for (const [key, args] of this.adds) this.queue('zadd', key).zadd(key, ...args);
    for (const [key, horizon] of trims) this.queue('zremrangebyscore', key).zremrangebyscore(key, '-inf', horizon);
    for (const [key, ttl] of expiries) this.queue('expire', key).expire(key, ttl);
    const keys = checks.map(([key]) => key);
    const ttls = checks.map(([, ttl]) => ttl);
    if (checks.length)
      this.queue('expire-where-none', keys.length > 1 ? `${keys[0]} (and ${keys.length - 1} more)` : keys[0]!).evalsha(
        EXPIRE_WHERE_NONE_SHA,
        keys.length,
        ...keys,
        ...ttls,
      );
    // A transaction Redis refused whole (EXECABORT: e.g. out of memory) rejects here: the batch is retried.
    const res = (await this.multi.exec()) ?? [];
    let failed = false;
    for (const [i, [err]] of res.entries()) {
      if (!err) continue;
      const [command, key] = this.queued[i]!;
      // The script cache was flushed (SCRIPT FLUSH, or a Redis that lost it while the connection stayed): the
      // script did nothing, so it runs again with its body, which also loads it for the next batches.
      if (command === 'expire-where-none' && err.message.includes('NOSCRIPT')) {
        try {
          await this.redis.eval(EXPIRE_WHERE_NONE, keys.length, ...keys, ...ttls);
          continue;
        } catch (e) {
          this.onError({ command, key, error: e as Error });
        }
      } else this.onError({ command, key, error: err });
      failed = true;
    }
    // A command that failed inside the transaction (ioredis reports it in the reply, it does not throw; the other
    // commands were applied) may have left a key without its TTL: remember nothing, so the next write of each key
    // sets it again. The failure itself was reported above (logged and counted by the service): retrying the batch
    // would fail the same way (a key of another type) and hold up every later event.
    if (failed) return;
    for (const [key] of trims) this.trimmed.record(key, 0, this.now);
    // `always` keys too: set now, they have their TTL (a status index is set again on its next batch regardless).
    // The checked keys are not recorded again: their window runs from when their expiry was last re-set.
    for (const [key, ttl] of expiries) this.expired.record(key, ttl, this.now);
  }
}

/**
 * A message's stored hashes — its summary (trk:msg) and its recipients' statuses (trk:rcpt), as read at the start
 * of the batch and updated in place by each of the batch's events — and what the batch changed in them: written
 * at the end in one HSET per hash and message, only the fields whose value changed (a stage event repeats the
 * envelope, so all it changes is the message's time).
 */
interface MessageState {
  readonly msgHash: Record<string, string>;
  readonly rcptHash: Record<string, string>;
  /** trk:msg and trk:rcpt were there when the batch read them. */
  readonly existed: boolean;
  readonly rcptExisted: boolean;
  readonly msgChanged: Set<string>;
  readonly rcptChanged: Set<string>;
  /** trk:ev field/value pairs (digest, event JSON) of this batch's events. */
  readonly events: string[];
  /** The TTL of the message's keys (the longest any of its events asked for). */
  ttl: number;
  /** The recipients of `msgHash.rcptTo`, parsed, and the same normalised (undefined until first needed). */
  rcptList?: string[];
  rcptNorm?: Set<string>;
  /** A non-refusal event was applied since the status index was last brought up to date. */
  statusDue: boolean;
}

export class TrackingWriter {
  private readonly expired: RecentlyDone;
  private readonly trimmed: RecentlyDone;

  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
    private readonly refusedTtlSeconds: number,
    /** A command Redis refused inside a batch's or the sweep's transaction (the others were applied). */
    private readonly onError: (e: TrackingWriteError) => void = () => undefined,
  ) {
    // A minute, or less when the retention itself is tiny (tests): never a noticeable part of the retention.
    const windowMs = Math.min(60_000, ttlSeconds * 10);
    this.expired = new RecentlyDone(windowMs);
    this.trimmed = new RecentlyDone(windowMs);
    // A new connection may be to a Redis that lost data (a restart, a failover): keys this writer expired may be
    // gone and come back without a TTL on the next write, so it forgets what it did.
    redis.on('ready', () => this.forget());
  }

  private forget(): void {
    this.expired.clear();
    this.trimmed.clear();
  }

  /**
   * Store events in their order (idempotent, like add()) with one round trip that reads the state of every message
   * they name and one MULTI that writes them all: the admin's ingest hands over a fetched batch at a time. Events
   * of one message arrive in order on one partition with one writer each, so reading first and deciding in memory
   * (each event sees the state the previous ones left) does not race.
   */
  addBatch(events: readonly TrackingEvent[]): Promise<void> {
    return this.addRecords(events.map((event) => ({ event, json: JSON.stringify(event) })));
  }

  /** addBatch() of events as the records they were read from: their JSON is stored as it came (EventRecord). */
  async addRecords(records: readonly EventRecord[]): Promise<void> {
    if (records.length === 0) return;
    const ids = [...new Set(records.map((r) => r.event.messageId))];
    const p = this.redis.pipeline();
    for (const id of ids) p.hgetall(`trk:msg:${id}`).hgetall(`trk:rcpt:${id}`);
    const res = (await p.exec()) ?? [];
    const state = new Map<string, MessageState>();
    ids.forEach((id, i) => {
      const [errH, h] = res[2 * i] ?? [];
      const [errR, rr] = res[2 * i + 1] ?? [];
      if (errH || errR) throw errH ?? errR;
      const msgHash = (h as Record<string, string> | null) ?? {};
      const rcptHash = (rr as Record<string, string> | null) ?? {};
      state.set(id, {
        msgHash,
        rcptHash,
        existed: Object.keys(msgHash).length > 0,
        rcptExisted: Object.keys(rcptHash).length > 0,
        msgChanged: new Set(),
        rcptChanged: new Set(),
        events: [],
        ttl: 0,
        statusDue: false,
      });
    });
    const w = new BatchWrites(this.redis, this.redis.multi(), Date.now(), this.expired, this.trimmed, this.onError);
    for (const r of records) this.write(w, r, state.get(r.event.messageId)!);
    for (const [id, s] of state) this.flush(w, id, s);
    await w.exec();
  }

  /** Applies one event to the message's state `s` (in place) and queues its index writes on `w`. */
  private write(w: BatchWrites, { event: e, json }: EventRecord, s: MessageState): void {
    const id = e.messageId;
    s.events.push(createHash('sha1').update(json).digest('base64url'), json);
    const at = Date.parse(e.at) || Date.now();
    const perRcpt = isPerRecipient(e);
    const note = NOTE_ONLY.has(e.type);
    const rcpts = note ? [] : (e.rcptTo ?? []);
    const refusal = e.type === 'refused';
    // A refusal leaves the status index alone; what the events before it in this batch did to it is done first.
    if (refusal && s.statusDue) this.reindexStatus(w, id, s);
    const prev = s.msgHash;
    const { firstSeenMs: prevFirst, updatedAtMs: prevAt, rank: prevRank, idx: prevIdx } = prev;
    // The message's time is its earliest event (events of one message can arrive slightly out of order).
    const first = prevFirst ? Math.min(Number(prevFirst), at) : at;
    // Index entries this message already has at this score need no second write (ZADD of the same member and
    // score changes nothing): a stage event repeats the envelope, and re-adding it to every index was most of the
    // store's Redis commands. A new first-seen time, a `received` or a refusal writes all of its indexes as before.
    const known = !!prevFirst && first === Number(prevFirst) && e.type !== 'received' && !refusal;
    const summary: Record<string, string> = {};
    // Most events do not move the first-seen time: no date to format again.
    if (String(first) !== prevFirst || !prev['firstSeen']) {
      summary['firstSeenMs'] = String(first);
      summary['firstSeen'] = new Date(first).toISOString();
    }
    if (e.mailFrom !== undefined) summary['mailFrom'] = e.mailFrom;
    // Recipients are the union of what the events named (a per-recipient event names a subset; never shrink).
    const knownRcpts = (s.rcptList ??= prev['rcptTo'] ? (JSON.parse(prev['rcptTo']) as string[]) : []);
    const seen = (s.rcptNorm ??= new Set(knownRcpts.map(norm)));
    const added = rcpts.filter((r) => !seen.has(norm(r)) && seen.add(norm(r)));
    if (added.length) {
      s.rcptList = [...knownRcpts, ...added];
      summary['rcptTo'] = JSON.stringify(s.rcptList);
    }
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
      summary['status'] = statusOf(e);
      summary['updatedAt'] = new Date(at).toISOString();
      summary['updatedAtMs'] = String(at);
      summary['rank'] = String(rank);
    }
    if (perRcpt) {
      let changed = false;
      for (const r of rcpts) {
        const rec = rcptRecord(e, r, at);
        const field = norm(r);
        const raw = s.rcptHash[field];
        if (!newer(rec, raw ? (JSON.parse(raw) as RcptRecord) : undefined)) continue;
        s.rcptHash[field] = JSON.stringify(rec);
        s.rcptChanged.add(field);
        changed = true;
      }
      // updatedAt is the time of the latest news about the message, whoever it was about.
      if (changed && (!prevAt || at > Number(prevAt))) summary['updatedAt'] = new Date(at).toISOString();
    }
    if (e.mailFrom !== undefined && !(known && prev['mailFrom'] === e.mailFrom)) {
      indexes.push(`trk:idx:from:${norm(e.mailFrom)}`);
      const d = domainOf(e.mailFrom);
      if (d) indexes.push(`trk:idx:fromdom:${d}`);
    }
    // When `known`, the recipients the message had before this event are indexed already.
    for (const r of known ? added : rcpts) {
      indexes.push(`trk:idx:rcpt:${norm(r)}`);
      const d = domainOf(r);
      if (d) indexes.push(`trk:idx:rcptdom:${d}`);
    }
    if (e.clientIp && !(known && prev['clientIp'] === e.clientIp)) indexes.push(`trk:idx:ip:${e.clientIp}`);
    // A refusal entry's keys outlive its retention by a day: the sweep needs its `idx` list to unindex it.
    s.ttl = Math.max(s.ttl, refusal ? this.refusedTtlSeconds + 86400 : this.ttlSeconds);
    if (refusal) {
      indexes.push('trk:idx:refused');
      const all = new Set([...(prevIdx ? (JSON.parse(prevIdx) as string[]) : []), ...indexes]);
      summary['idx'] = JSON.stringify([...all]);
    }
    const horizon = w.now - this.ttlSeconds * 1000;
    for (const idx of new Set(indexes)) {
      if (idx === 'trk:idx:time') {
        w.zadd(idx, first, id);
        continue;
      }
      // An entry older than the retention would go with the trim at the end of this MULTI: not added at all, so
      // an index key this batch writes always keeps an entry (and the TTL it is given).
      if (first <= horizon) continue;
      w.zadd(idx, first, id);
      w.trim(idx, horizon);
      w.expire(idx, this.ttlSeconds);
    }
    for (const f in summary) {
      if (prev[f] === summary[f]) continue;
      prev[f] = summary[f]!;
      s.msgChanged.add(f);
    }
    if (!refusal) s.statusDue = true;
  }

  /** Queues the message's hash writes and expiries, after all of its events in the batch. */
  private flush(w: BatchWrites, id: string, s: MessageState): void {
    if (s.statusDue) this.reindexStatus(w, id, s);
    // A message the read found is stored and has its expiry (set with every write that creates its keys); one it
    // did not find is new, or its keys went (expired, swept, lost by Redis): they are created here, with a TTL.
    w.hset(`trk:ev:${id}`, s.events);
    w.expire(`trk:ev:${id}`, s.ttl, s.existed ? 'found' : 'always');
    // The summary's expiry is refreshed with the event log's (RecentlyDone: at most once a minute), changed or not.
    if (s.msgChanged.size) w.hset(`trk:msg:${id}`, fieldsOf(s.msgHash, s.msgChanged));
    w.expire(`trk:msg:${id}`, s.ttl, s.existed ? 'found' : 'always');
    if (s.rcptChanged.size) {
      w.hset(`trk:rcpt:${id}`, fieldsOf(s.rcptHash, s.rcptChanged));
      w.expire(`trk:rcpt:${id}`, s.ttl, s.rcptExisted ? 'found' : 'always');
    }
  }

  /**
   * Keep the message under its current status in trk:idx:status:* (the status a search shows: the recipients'
   * aggregate, computed from the state the batch's events left so far). Records the move in the summary (sidx,
   * sidxAt); once per message and batch (and before a refusal), not per event: only where it ends up matters.
   */
  private reindexStatus(w: BatchWrites, id: string, s: MessageState): void {
    s.statusDue = false;
    const h = s.msgHash;
    const first = Number(h['firstSeenMs']);
    const status = toSummary(id, h, s.rcptHash).status;
    // The index entry is at the message's first-seen score: a new earlier time moves it too.
    if (h['sidx'] === status && String(first) === h['sidxAt']) return;
    if (h['sidx'] && h['sidx'] !== status) w.zrem(`trk:idx:status:${h['sidx']}`, id);
    const horizon = w.now - this.ttlSeconds * 1000;
    // Older than the retention: the trim would drop it in this MULTI (see write()).
    if (first > horizon) {
      w.zaddNow(`trk:idx:status:${status}`, first, id);
      w.trim(`trk:idx:status:${status}`, horizon);
      w.expire(`trk:idx:status:${status}`, this.ttlSeconds, 'always');
    }
    h['sidx'] = status;
    h['sidxAt'] = String(first);
    s.msgChanged.add('sidx').add('sidxAt');
  }

  /**
   * Drop index entries older than the retention (the per-message keys expire by themselves), and refusal entries
   * older than the refusal retention from every index they are in. Returns how many entries went.
   */
  async sweep(now = Date.now()): Promise<number> {
    try {
      return await this.sweepOnce(now);
    } finally {
      // The sweep deletes keys and may empty index keys (deleting them): what RecentlyDone remembers about them
      // no longer holds.
      this.forget();
    }
  }

  private async sweepOnce(now: number): Promise<number> {
    let n = await this.redis.zremrangebyscore('trk:idx:time', '-inf', now - this.ttlSeconds * 1000);
    const horizon = now - this.refusedTtlSeconds * 1000;
    for (;;) {
      const ids = await this.redis.zrangebyscore('trk:idx:refused', '-inf', horizon, 'LIMIT', 0, 500);
      if (ids.length === 0) return n;
      const p = this.redis.pipeline();
      for (const id of ids) p.hget(`trk:msg:${id}`, 'idx');
      const idx = ((await p.exec()) ?? []).map(([, v]) => (v ? (JSON.parse(v as string) as string[]) : []));
      const m = this.redis.multi();
      const queued: [string, string][] = [];
      ids.forEach((id, i) => {
        for (const k of new Set([...idx[i]!, 'trk:idx:time', 'trk:idx:refused'])) {
          m.zrem(k, id);
          queued.push(['zrem', k]);
        }
        m.del(`trk:msg:${id}`, `trk:ev:${id}`, `trk:rcpt:${id}`);
        queued.push(['del', `trk:msg:${id}`]);
      });
      // As in a batch: a refused command is reported, the rest of the transaction stands.
      for (const [j, [err]] of ((await m.exec()) ?? []).entries()) {
        if (err) this.onError({ command: queued[j]![0], key: queued[j]![1], error: err });
      }
      n += ids.length;
    }
  }
}

/** HSET arguments: `fields` of `hash`, as field, value pairs. */
function fieldsOf(hash: Record<string, string>, fields: Set<string>): string[] {
  const out: string[] = [];
  for (const f of fields) out.push(f, hash[f]!);
  return out;
}
