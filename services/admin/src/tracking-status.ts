// The tracking store's pure rules: which status an event gives a message and its recipients, how the recipients'
// statuses make the message's, the sender-authentication class, subject words, and a stored message's summary.
// No I/O: the write path (tracking-write.ts) and the query path (tracking-query.ts) both decide with these.
import type { TrackingEvent, TrackingEventType } from '@mailgate/contracts';
import { norm } from './tracking-keys.js';

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
export const RANK: Partial<Record<TrackingEventType, number>> = {
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
export function isPerRecipient(e: TrackingEvent): boolean {
  if (e.type === 'delivered' || e.type === 'deferred' || e.type === 'bounced') return true;
  return e.type === 'deleted' && e.details?.['from'] === 'delivery-queue';
}

/** `dsn-generated` names the DSN's recipient (our sender): a note on the timeline, not a status or a recipient. */
export const NOTE_ONLY: ReadonlySet<TrackingEventType> = new Set(['dsn-generated']);

export interface RcptRecord {
  status: string;
  atMs: number;
  rank: number;
  reply?: string;
  remoteHost?: string;
  attempt?: number;
  nextAttemptAt?: string;
}

export function rcptRecord(e: TrackingEvent, rcpt: string, at: number): RcptRecord {
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
export const newer = (a: { atMs: number; rank: number }, b: { atMs: number; rank: number } | undefined) =>
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

export function statusOf(e: TrackingEvent): string {
  if (e.type === 'stage') {
    const kind = (e.details?.['verdict'] as { kind?: string } | undefined)?.kind;
    if (kind === 'tempfail') return 'held';
  }
  return STATUS_OF[e.type] ?? e.type;
}

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

/** The summary a search or a lookup shows, from the message's stored hashes (trk:msg and trk:rcpt). */
export function toSummary(id: string, h: Record<string, string>, rr: Record<string, string>): MessageSummary {
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
