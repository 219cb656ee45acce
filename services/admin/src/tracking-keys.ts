// The tracking store's Redis layout and its key names: the writes (tracking-write.ts) and the queries
// (tracking-query.ts) must agree on them key by key, so both take them from here.

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
 * Every key expires after the retention period, counted from its last write (a writer re-sets an expiry it set
 * less than a minute before only where the key has none: it went and was created again since, tracking-write.ts
 * RecentlyDone and EXPIRE_WHERE_NONE); index entries
 * older than it are trimmed by the writes to the index (at most once a minute per key and writer; the time index by
 * a periodic sweep), so a busy recipient's index does not grow for ever.
 * Refusals have their own, shorter retention (a spam run makes many): each refusal entry remembers the index keys
 * it was added to (`idx` field), and the sweep removes entries older than the refusal retention from all of them.
 */

/** Addresses and Message-IDs as the indexes hold them: trimmed, lower case, without surrounding <>. */
export const norm = (s: string) =>
  s
    .trim()
    .toLowerCase()
    .replace(/^<(.*)>$/, '$1');

/** Message-ID index key: `<a@b>` and `a@b` are the same, case-insensitive (as people type them). */
export const midKey = (v: string) => `trk:idx:mid:${norm(v)}`;

export function domainOf(address: string): string | null {
  const a = norm(address);
  const i = a.lastIndexOf('@');
  return i >= 0 && i < a.length - 1 ? a.slice(i + 1) : null;
}

/** `bob@x.test` → the address index; `@x.test` or `x.test` → the domain index. */
export function addressIndex(field: 'rcpt' | 'from', q: string): string {
  const v = norm(q);
  if (v.startsWith('@')) return `trk:idx:${field}dom:${v.slice(1)}`;
  if (!v.includes('@')) return `trk:idx:${field}dom:${v}`;
  return `trk:idx:${field}:${v}`;
}
