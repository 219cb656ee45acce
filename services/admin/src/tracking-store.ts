// One file (~670 lines): one Redis layout (below), written by ingest and read by every search; the writes and
// the queries must agree key by key, so they stay next to each other.
import { createHash, randomUUID } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type { TrackingEvent, TrackingEventType } from '@mailgate/contracts';

/**
 * The message tracking store: every tracking event, indexed so "where is the mail from bob@partner.com sent at
 * 10:02?" is one query. Redis layout (under the configured key prefix):
 *   trk:msg:<id>        hash   summary (sender, recipients, client IP, trace id, message-level status, times)
 *   trk:rcpt:<id>       hash   recipient → that recipient's own status (delivered / deferred / bounced / deleted
 *                              from the delivery queue: the events that name a subset of the recipients)
 *   trk:ev:<id>         hash   event digest → event JSON (events are at-least-once: a redelivered event lands on
 *                              the same field, so every write is idempotent and one MULTI stores an event whole)
 *   trk:idx:time        zset   id by first-seen time (ms)
 *   trk:idx:{rcpt,from,ip}:<value>        zset   id by first-seen time
 *   trk:idx:{rcptdom,fromdom}:<domain>   zset   id by first-seen time (search by "@partner.com")
 *   trk:idx:mid:<Message-ID header>     zset   id by first-seen time (without <>, lower case)
 *   trk:idx:word:<subject word>         zset   id by first-seen time (search by subject words, all must match)
 *   trk:idx:refused     zset   SMTP-time refusals (ingress `refused` events: no message was accepted) by time
 *   trk:idx:auth:{pass,fail,none}       zset   id by first-seen time: the sender-authentication class (authClass)
 *   trk:idx:status:<status>             zset   id by first-seen time under its current message status (one at a
 *                                              time; the hash's `sidx` field names it); refusals use trk:idx:refused
 * Every key expires after the retention period; index entries older than it are trimmed on each write to the
 * index (and the time index by a periodic sweep), so a busy recipient's index does not grow for ever.
 * Refusals have their own, shorter retention (a spam run makes many): each refusal entry remembers the index keys
 * it was added to (`idx` field), and the sweep removes entries older than the refusal retention from all of them.
 */
/** One recipient's own status: what the delivery attempts said for it (or the message's status before them). */
export interface RecipientStatus {
  readonly rcpt: string;
  readonly status: string;
  /** When this status was reached (ISO). */
  readonly at: string;
  /** The remote reply (delivered, bounced) or the last temporary error (deferred). */
  readonly reply?: string;
  readonly remoteHost?: string;
  readonly attempt?: number;
  readonly nextAttemptAt?: string;
}

export interface MessageSummary {
  readonly id: string;
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly clientIp: string;
  readonly traceId: string;
  /**
   * The message's status: the recipients' common status, `partially-delivered` when some were delivered and
   * others not (yet), else the least final of them. In a search by one recipient address, that recipient's status.
   */
  readonly status: string;
  /** Each recipient's own status, in envelope order. */
  readonly recipients: RecipientStatus[];
  readonly firstSeen: string;
  readonly updatedAt: string;
  readonly ingressHost: string;
  /** From the `received` event (ingress reads the header block): empty when the message had none. */
  readonly subject: string;
  readonly messageIdHeader: string;
  readonly size?: number;
  /** Sender authentication class (authClass): absent for messages ingress did not report on (refusals, old events). */
  readonly auth?: AuthClass;
}

export type AuthClass = 'pass' | 'fail' | 'none';
export const AUTH_CLASSES: readonly AuthClass[] = ['pass', 'fail', 'none'];

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

/**
 * Events about some recipients only: a delivery attempt's outcome per destination, or a delete from the delivery
 * queue (its pending recipients). Their `rcptTo` is that subset; every other event is about the whole message.
 * The events of one attempt share a timestamp (one stage outcome, packages/bus/src/runner.ts), so a recipient's
 * status is kept per recipient and never decided by a tie-break between a@'s deferral and b@'s delivery.
 */
function isPerRecipient(e: TrackingEvent): boolean {
  if (e.type === 'delivered' || e.type === 'deferred' || e.type === 'bounced') return true;
  return e.type === 'deleted' && e.details?.['from'] === 'delivery-queue';
}

/** `dsn-generated` names the DSN's recipient (our sender): a note on the timeline, not a status or a recipient. */
const NOTE_ONLY: ReadonlySet<TrackingEventType> = new Set(['dsn-generated']);

interface RcptRecord {
  status: string;
  atMs: number;
  rank: number;
  reply?: string;
  remoteHost?: string;
  attempt?: number;
  nextAttemptAt?: string;
}

function rcptRecord(e: TrackingEvent, rcpt: string, at: number): RcptRecord {
  const d = e.details ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const replies = d['replies'] as Record<string, unknown> | undefined;
  const reply = str(d['reply']) ?? str(d['reason']) ?? str(replies?.[rcpt]);
  const remoteHost = str(d['remoteHost']);
  const r: RcptRecord = { status: statusOf(e), atMs: at, rank: RANK[e.type] ?? 1 };
  if (reply) r.reply = reply;
  if (remoteHost) r.remoteHost = remoteHost;
  if (typeof d['attempt'] === 'number') r.attempt = d['attempt'];
  const next = str(d['nextAttemptAt']);
  if (next) r.nextAttemptAt = next;
  return r;
}

/** Newer wins; in the same millisecond the more final one. */
const newer = (a: { atMs: number; rank: number }, b: { atMs: number; rank: number } | undefined) =>
  !b || a.atMs > b.atMs || (a.atMs === b.atMs && a.rank >= b.rank);

const PENDING_ORDER = ['in-pipeline', 'held', 'deferred', 'quarantined', 'dead-lettered', 'bounced', 'deleted'];

/** The message's status from its recipients' statuses (see MessageSummary.status). */
export function aggregateStatus(statuses: readonly string[], fallback: string): string {
  const set = new Set(statuses);
  if (set.size === 0) return fallback;
  if (set.size === 1) return statuses[0]!;
  if (set.has('delivered')) return 'partially-delivered';
  return PENDING_ORDER.find((s) => set.has(s)) ?? statuses[0]!;
}

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

/** Message-ID index key: `<a@b>` and `a@b` are the same, case-insensitive (as people type them). */
const midKey = (v: string) => `trk:idx:mid:${norm(v)}`;

/** Subject words for the index: letters and digits, lower case, numbers and words of 2+ characters, at most 30. */
export function subjectWords(subject: string): string[] {
  const tokens =
    subject
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? [];
  const words = tokens.filter((w) => w.length >= 2 || /^\p{N}$/u.test(w));
  return [...new Set(words.map((w) => w.slice(0, 40)))].slice(0, 30);
}

const FAILED = new Set(['fail', 'softfail', 'permerror']);

/**
 * The sender-authentication class of a message, from the result words ingress puts in the `received` event
 * (`details.auth`, services/ingress-smtp/src/sender-auth-phase.ts authSummary):
 * - `fail`: SPF or DMARC failed (fail, softfail, permerror), or every DKIM signature failed (one good signature
 *   authenticates the message; a mailing list that broke the author's signature and added its own is not a forgery);
 * - `pass`: nothing failed and at least one of SPF, DKIM, DMARC passed;
 * - `none`: not checked (sender authentication off, trusted network, authenticated submission, exempt domain) or
 *   only none/neutral/temperror results.
 * Dry-run results count like enforced ones: the search shows what would have been refused.
 */
export function authClass(auth: unknown): AuthClass {
  if (!auth || typeof auth !== 'object') return 'none';
  const a = auth as Record<string, unknown>;
  const word = (k: string) => (typeof a[k] === 'string' ? (a[k] as string).toLowerCase() : '');
  const dkim = word('dkim')
    .split(',')
    .filter((w) => w && w !== 'none');
  if (FAILED.has(word('spf')) || FAILED.has(word('dmarc'))) return 'fail';
  if (dkim.length && dkim.every((w) => FAILED.has(w))) return 'fail';
  if (word('spf') === 'pass' || word('dmarc') === 'pass' || dkim.includes('pass')) return 'pass';
  return 'none';
}

export class BadCursorError extends Error {
  readonly http = 400;
}

interface Cursor {
  /** Score (first-seen ms) of the last result returned. */
  s: number;
  /** How many results with exactly that score were returned so far (ties continue after them). */
  k: number;
}

function decodeCursor(c: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as Cursor;
    if (Number.isFinite(v.s) && Number.isInteger(v.k) && v.k >= 0) return v;
  } catch {
    // fall through
  }
  throw new BadCursorError('malformed cursor');
}
const encodeCursor = (c: Cursor) => Buffer.from(JSON.stringify(c)).toString('base64url');

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
  h: Record<string, string>;
  rr: Record<string, string>;
}

export class TrackingStore {
  private readonly ttlSeconds: number;
  private readonly refusedTtlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionDays: number,
    refusedRetentionDays = retentionDays,
  ) {
    this.ttlSeconds = Math.ceil(retentionDays * 86400);
    this.refusedTtlSeconds = Math.ceil(Math.min(refusedRetentionDays, retentionDays) * 86400);
  }

  /** Store one event (idempotent: storing the same event twice changes nothing). */
  async add(e: TrackingEvent): Promise<void> {
    await this.addBatch([e]);
  }

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
      state.set(id, { h: (h as Record<string, string> | null) ?? {}, rr: (rr as Record<string, string> | null) ?? {} });
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
    const prev = before.h;
    const prevRcptAll = before.rr;
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
    const after: MessageState = { h: { ...prev, ...summary }, rr: { ...prevRcptAll, ...rcptUpdates } };
    if (!refusal) this.reindexStatus(w, id, first, after);
    return after;
  }

  /**
   * Keep the message under its current status in trk:idx:status:* (the status a search shows: the recipients'
   * aggregate, computed from the state this write leaves: the hashes as read plus this event's updates). Records
   * the move in `s.h` (sidx, sidxAt) as it writes it.
   */
  private reindexStatus(w: BatchWrites, id: string, first: number, s: MessageState): void {
    const m = w.multi;
    const h = s.h;
    const status = toSummary(id, h, s.rr).status;
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
      const max = cursor ? Math.min(cursor.s, q.until ?? Infinity) : (q.until ?? '+inf');
      const skip = cursor && cursor.s === max ? cursor.k : 0;
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
        nextCursor = encodeCursor({ s: last, k: ties + (last === max ? skip : 0) });
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

function toSummary(id: string, h: Record<string, string>, rr: Record<string, string>): MessageSummary {
  const rcptTo = h['rcptTo'] ? (JSON.parse(h['rcptTo']) as string[]) : [];
  const msgStatus = h['status'] ?? 'unknown';
  const msgAt = { atMs: Number(h['updatedAtMs'] ?? 0), rank: Number(h['rank'] ?? 0) };
  const recipients = rcptTo.map((rcpt): RecipientStatus => {
    const raw = rr[norm(rcpt)];
    const rec = raw ? (JSON.parse(raw) as RcptRecord) : undefined;
    // A message-level event after the recipient's own (a release, a quarantine on recheck) speaks for it again.
    if (!rec || !newer(rec, msgAt)) return { rcpt, status: msgStatus, at: h['updatedAt'] ?? '' };
    const { atMs, rank: _rank, ...rest } = rec;
    return { rcpt, ...rest, at: new Date(atMs).toISOString() };
  });
  return {
    id,
    mailFrom: h['mailFrom'] ?? '',
    rcptTo,
    clientIp: h['clientIp'] ?? '',
    traceId: h['traceId'] ?? '',
    status: aggregateStatus(
      recipients.map((r) => r.status),
      msgStatus,
    ),
    recipients,
    firstSeen: h['firstSeen'] ?? '',
    updatedAt: h['updatedAt'] ?? '',
    ingressHost: h['ingressHost'] ?? '',
    subject: h['subject'] ?? '',
    messageIdHeader: h['messageIdHeader'] ?? '',
    ...(h['size'] ? { size: Number(h['size']) } : {}),
    ...(AUTH_CLASSES.includes(h['auth'] as AuthClass) ? { auth: h['auth'] as AuthClass } : {}),
  };
}
