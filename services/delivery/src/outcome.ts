import type { EventPart } from '@mailgate/delivery-queue';
import type { RecipientResult } from './deliver.js';

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) {
    const k = key(i);
    let l = m.get(k);
    if (!l) m.set(k, (l = []));
    l.push(i);
  }
  return m;
}

/**
 * Tracking events for one attempt: `delivered` per answering server (with its reply), `deferred` per destination
 * (reason and next attempt), `bounced` per destination (reply, and the DSN id or why there is none).
 */
export function attemptEvents(
  results: readonly RecipientResult[],
  o: { attempt: number; nextAttemptAt?: number | undefined; dsnId?: string | null; giveUp?: boolean },
): EventPart[] {
  const events: EventPart[] = [];
  const fresh = results.filter((r) => !r.alreadyDelivered);
  for (const [host, rs] of groupBy(
    fresh.filter((r) => r.status === 'delivered'),
    (r) => r.remoteHost ?? '',
  )) {
    events.push({
      type: 'delivered',
      rcptTo: rs.map((r) => r.rcpt),
      details: { remoteHost: host, reply: rs[0]!.reply, destination: rs[0]!.destination, attempt: o.attempt },
    });
  }
  for (const [dest, rs] of groupBy(
    fresh.filter((r) => r.status === 'deferred'),
    (r) => r.destination,
  )) {
    events.push({
      type: 'deferred',
      rcptTo: rs.map((r) => r.rcpt),
      details: {
        destination: dest,
        reason: rs[0]!.reply,
        remoteHost: rs[0]!.remoteHost ?? null,
        attempt: o.attempt,
        nextAttemptAt: o.nextAttemptAt ? new Date(o.nextAttemptAt).toISOString() : null,
      },
    });
  }
  for (const [dest, rs] of groupBy(
    fresh.filter((r) => r.status === 'failed'),
    (r) => r.destination,
  )) {
    events.push({
      type: 'bounced',
      rcptTo: rs.map((r) => r.rcpt),
      details: {
        destination: dest,
        replies: Object.fromEntries(rs.map((r) => [r.rcpt, r.reply])),
        remoteHost: rs[0]!.remoteHost ?? null,
        attempt: o.attempt,
        giveUp: o.giveUp ?? false,
        dsn: o.dsnId ?? null,
      },
    });
  }
  return events;
}
