import { randomUUID } from 'node:crypto';
import type { PipelineMessage } from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import { runInSpan } from '@mailgate/telemetry';
import { context, SpanKind, type Tracer } from '@opentelemetry/api';
import type { ClaimReads, HeldClaim, MessageClaims } from './claim.js';
import { backoffRemaining, type DestinationLimits } from './limits.js';
import type { DeliveredMarkers, MarkerState } from './markers.js';
import type { DeliveryMetrics } from './metrics.js';
import type { DestinationResolver, Target } from './mx.js';
import type { OutcomeJournal } from './outcome-journal.js';
import type { ConnectionPool } from './pool.js';
import type { Route, Router } from './routing.js';
import { SmtpFailure } from './smtp.js';
import { recordReplies } from './span-replies.js';

export type RecipientStatus = 'delivered' | 'deferred' | 'failed';

export interface RecipientResult {
  readonly rcpt: string;
  readonly status: RecipientStatus;
  /** The remote reply (exact), or ours in reply form ("451 4.4.1 …") when there was none. */
  readonly reply: string;
  /** `mx.example.com[192.0.2.1]:25` of the server that answered, when one did. */
  readonly remoteHost?: string | undefined;
  /** The destination (route key) the recipient belongs to. */
  readonly destination: string;
  /** Skipped because a delivered marker says a previous attempt already got a 250. */
  readonly alreadyDelivered?: boolean;
}

export interface EngineDeps {
  readonly router: Router;
  readonly resolver: DestinationResolver;
  readonly pool: ConnectionPool;
  readonly limits: DestinationLimits;
  readonly markers: DeliveredMarkers;
  /** Where remote 250s are recorded (Redis, or a local journal while Redis is away). */
  readonly journal: OutcomeJournal;
  readonly metrics: DeliveryMetrics;
  /** Cross-replica claim per message id around marker check → send → marker write. */
  readonly claims: MessageClaims;
  readonly tracer: Tracer;
  readonly log: Logger;
  /** Every attempt's results (metrics). */
  readonly onResults?: ((results: readonly RecipientResult[]) => void) | undefined;
}

/** The message's retry store entry, read with the claim: the recipients it holds are left out of the attempt. */
export interface QueuedLookup {
  /** Redis key of the entry (a hash: RetryStore.key). */
  readonly key: string;
  /** Given the entry's fields ({} when there is none): the recipients the retry queue owns. */
  readonly owned: (hash: Record<string, string>) => ReadonlySet<string>;
}

const hostLabel = (t: Target) => `${t.host}[${t.address}]:${t.port}`;
/** One address per recipient, compared case-insensitively (the last spelling wins, as markers are lower-cased). */
const uniqueRecipients = (rcpts: readonly string[]) => [...new Map(rcpts.map((r) => [r.toLowerCase(), r])).values()];
const byLowerCase = <V>(m: ReadonlyMap<string, V>) => new Map([...m].map(([k, v]) => [k.toLowerCase(), v]));
const is421 = (reply: string) => reply.startsWith('421');

/**
 * One delivery attempt of one message to some of its recipients: group by destination, one SMTP transaction
 * per destination (hosts tried in MX / priority order), per-recipient results. Recipients with a delivered
 * marker are not sent again. No retry logic here: the stage and the retry worker decide what a result means.
 */
export class DeliveryEngine {
  /** Attempts in flight per message id (see deliver()). */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: EngineDeps) {}

  /**
   * Attempts of one message id run one after the other: duplicate records of one message (a redelivery after a
   * broker restart puts several copies in one batch) would otherwise all read "no marker" before the first 250 is
   * recorded, and each send a copy. In this process a promise chain orders them (no Redis polling for the common
   * case); across replicas (one replica's retry worker, another's stage with a redelivered record) the Redis
   * claim does (see claim.ts). Either way the later attempt re-reads the markers and skips what was delivered.
   *
   * Redis round trips of an attempt that delivers everything to one destination: one script that takes the claim
   * and reads the markers, the pending marks, the destination backoffs (and `opts.queued`); the pending mark
   * before the final dot (while the body goes out); one script after the 250 that writes the delivered markers,
   * removes the pending marks, resets the destination's failure counter and releases the claim.
   */
  async deliver(
    msg: PipelineMessage,
    recipients: readonly string[],
    opts: { queued?: QueuedLookup | undefined } = {},
  ): Promise<RecipientResult[]> {
    const id = msg.envelope.id;
    const before = this.inflight.get(id);
    // Every recipient's state is read (also those the retry queue turns out to own: the read happens before
    // anyone knows), keyed by the lower-cased address as the markers are.
    const all = uniqueRecipients(recipients);
    const dests = [...new Set(all.map((r) => this.deps.router.route(r).key))];
    const reads: ClaimReads = {
      hash: opts.queued?.key,
      strings: this.deps.markers.stateKeys(id, all),
      ttls: dests.map((d) => this.deps.limits.backoffKey(d)),
    };
    const run = (before ?? Promise.resolve())
      .catch(() => undefined)
      .then(() =>
        this.deps.claims.withClaim(
          id,
          (claim) => {
            const backoff = new Map(dests.map((d, i) => [d, backoffRemaining(claim.ttls[i] ?? -2)]));
            const owned = opts.queued?.owned(claim.hash);
            const mine = owned && owned.size > 0 ? recipients.filter((r) => !owned.has(r)) : recipients;
            return this.deliverNow(msg, mine, this.deps.markers.parseState(id, all, claim.strings), backoff, claim);
          },
          reads,
        ),
      );
    this.inflight.set(id, run);
    try {
      const results = await run;
      this.deps.onResults?.(results);
      return results;
    } finally {
      if (this.inflight.get(id) === run) this.inflight.delete(id);
    }
  }

  private async deliverNow(
    msg: PipelineMessage,
    recipients: readonly string[],
    read: MarkerState,
    backoff: ReadonlyMap<string, number>,
    claim: HeldClaim,
  ): Promise<RecipientResult[]> {
    const id = msg.envelope.id;
    const unique = uniqueRecipients(recipients);
    const journaled = this.deps.journal.lookup(id, unique);
    const done = byLowerCase(read.done);
    const pending = byLowerCase(read.pending);
    const now = Date.now();
    const results: RecipientResult[] = [];
    const todo: string[] = [];
    const resent = new Map<string, number>();
    for (const r of unique) {
      const m = journaled.get(r) ?? done.get(r.toLowerCase());
      const p = pending.get(r.toLowerCase());
      if (m) {
        results.push({
          rcpt: r,
          status: 'delivered',
          reply: m.reply,
          remoteHost: m.host,
          destination: this.deps.router.route(r).key,
          alreadyDelivered: true,
        });
      } else if (p && p.until > now) {
        // An earlier attempt got as far as DATA and its outcome is unknown: the duplicate rule says wait.
        results.push({
          rcpt: r,
          status: 'deferred',
          reply: `451 4.4.7 outcome of an earlier attempt to ${p.dest} unknown; not resent before ${new Date(p.until).toISOString()}`,
          destination: this.deps.router.route(r).key,
        });
      } else {
        if (p) resent.set(p.dest, (resent.get(p.dest) ?? 0) + 1);
        todo.push(r);
      }
    }
    for (const [dest, n] of resent) {
      this.deps.metrics.possibleDuplicates(n, dest);
      this.deps.log.warn(
        { msgId: id, destination: dest, recipients: n },
        'pending mark expired with the earlier outcome unknown: sending again (possible duplicate)',
      );
    }
    const groups = this.deps.router.group(todo);
    // With one transaction, its markers' write also releases the claim (saves the release round trip). With
    // several, the claim must outlive them all: withClaim releases it.
    const release = groups.length === 1 && claim.token !== null ? claim : undefined;
    const perGroup = await Promise.all(
      groups.map((g) => this.attempt(msg, g.route, g.recipients, backoff.get(g.route.key) ?? 0, release)),
    );
    for (const g of perGroup) results.push(...g);
    return results;
  }

  private async attempt(
    msg: PipelineMessage,
    route: Route,
    rcpts: string[],
    backoff: number,
    claim: HeldClaim | undefined,
  ): Promise<RecipientResult[]> {
    const span = this.deps.tracer.startSpan(
      'delivery attempt',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'mailgate.message_id': msg.envelope.id,
          'mailgate.destination': route.key,
          'mailgate.route': route.type,
          'mailgate.recipients': rcpts.length,
        },
      },
      context.active(),
    );
    return runInSpan(span, async () => {
      const out = await this.attemptIn(msg, route, rcpts, span, backoff, claim);
      const counts = { delivered: 0, deferred: 0, failed: 0 };
      for (const r of out) counts[r.status]++;
      span.setAttributes({
        'mailgate.delivered': counts.delivered,
        'mailgate.deferred': counts.deferred,
        'mailgate.failed': counts.failed,
      });
      const host = out.find((r) => r.remoteHost)?.remoteHost;
      if (host) span.setAttribute('server.address', host);
      recordReplies(span, out);
      return out;
    });
  }

  private async attemptIn(
    msg: PipelineMessage,
    route: Route,
    rcpts: string[],
    span: ReturnType<Tracer['startSpan']>,
    /** Remaining backoff of the destination, read with the claim. */
    backoff: number,
    /** The claim to release with the markers' write (the message's only transaction). */
    claim: HeldClaim | undefined,
  ): Promise<RecipientResult[]> {
    const dest = route.key;
    const all = (status: RecipientStatus, reply: string, remoteHost?: string): RecipientResult[] =>
      rcpts.map((rcpt) => ({ rcpt, status, reply, remoteHost, destination: dest }));

    if (backoff > 0) {
      const why = (await this.deps.limits.backoffReason(dest)) ?? 'repeated temporary failures';
      span.addEvent('destination backed off', { remainingMs: backoff });
      return all(
        'deferred',
        `451 4.4.5 destination ${dest} backed off for ${Math.ceil(backoff / 1000)} s after repeated failures (last: ${why})`,
      );
    }

    const res = await this.deps.resolver.resolve(route);
    if (res.kind === 'perm') return all('failed', res.reply);
    if (res.kind === 'temp') return all('deferred', res.reply);

    const policy = { tls: route.tls, tlsVerify: route.tlsVerify, auth: route.auth };
    let last: SmtpFailure | undefined;
    for (const target of res.targets) {
      const label = hostLabel(target);
      let lease;
      try {
        lease = await this.deps.pool.acquire(dest, target, policy);
      } catch (e) {
        if (!(e instanceof SmtpFailure)) throw e;
        last = e;
        span.addEvent('connect failed', { host: label, reply: e.reply });
        if (e.tryNext) continue;
        break;
      }
      let tx;
      // Every path below gives the lease (and its destination slot) back: the finally is the only release.
      let reusable = false;
      /** A 421 among the per-recipient replies (counts as a destination failure). */
      let failure421: string | undefined;
      /** The success and the refused recipients' pending marks were written with the delivered markers. */
      let bookkept = false;
      try {
        // Before the final dot: if this process dies between the remote 250 and the record, a retry must know (see
        // markers.ts). The mark is written while the body goes out (after 354), so only the dot's round trip is left
        // in which a crash leaves an outcome unknown; a transaction refused before DATA writes no mark at all.
        // No mark, no dot: a Redis error here defers (the connection is closed before the dot: nothing was sent).
        const attempt = randomUUID();
        /** The mark's write, once begun (the mark may be in Redis from then on). */
        let markWrite: Promise<void> | undefined;
        let markFailed = false;
        const markBeforeDot = () =>
          (markWrite = this.deps.markers.markPending(msg.envelope.id, rcpts, dest, attempt).catch((e: unknown) => {
            markFailed = true;
            throw e;
          }));
        /** Settles the mark's write (a transaction that failed while it was under way), true when it began. */
        const marked = async () => {
          if (!markWrite) return false;
          await markWrite.catch(() => undefined);
          return true;
        };
        try {
          tx = await lease.conn.send(msg.envelope.mailFrom, rcpts, msg.raw, markBeforeDot);
        } catch (e) {
          if (markFailed) {
            // The mark may have been written all the same (the reply was lost): it must not hold this mail back.
            await this.deps.markers.voidPending(msg.envelope.id, rcpts, attempt);
            throw e;
          }
          if (!(e instanceof SmtpFailure)) throw e;
          last = e;
          span.addEvent('transaction failed', { host: label, phase: e.phase, reply: e.reply });
          // A reply that refused the message is a known outcome: the next attempt may send at once.
          // A void that raced the mark's write could be overtaken by it: settle the write first.
          if (!e.outcomeUnknown && (await marked()))
            await this.deps.markers.voidPending(msg.envelope.id, rcpts, attempt);
          reusable = lease.conn.isAlive && (e.phase === 'mail' || e.phase === 'size') && (await lease.conn.reset());
          if (e.tryNext) continue;
          if (e.temporary && is421(e.reply)) await this.deps.limits.recordFailure(dest, e.reply).catch(() => false);
          return all(e.temporary ? 'deferred' : 'failed', e.reply, label);
        }
        const got = new Set(tx.delivered.map((r) => r.toLowerCase()));
        const notSent = rcpts.filter((r) => !got.has(r.toLowerCase()));
        failure421 = tx.refused.find((r) => is421(r.reply))?.reply;
        // The remote 250 is in: record it before anything else (never throws; survives a Redis outage). The
        // bookkeeping of this transaction rides along: the refused recipients' pending marks, the destination's
        // failure counter (a success resets it), the claim (nothing left for it to protect).
        let recorded = false;
        if (tx.delivered.length > 0) {
          const to = await this.deps.journal.record(
            msg.envelope.id,
            tx.delivered,
            { reply: tx.dataReply ?? '250', host: label, at: new Date().toISOString() },
            {
              clear: notSent,
              del: failure421 === undefined ? [this.deps.limits.failsKey(dest)] : [],
              release: claim?.token ? { key: claim.key, token: claim.token } : undefined,
            },
          );
          recorded = to === 'redis';
          if (recorded && claim) claim.released = true;
        }
        bookkept = recorded;
        if (!recorded && notSent.length > 0 && (await marked()))
          await this.deps.markers.voidPending(msg.envelope.id, notSent, attempt);
        reusable = tx.delivered.length > 0 ? true : await lease.conn.reset();
      } finally {
        this.deps.pool.release(lease, reusable);
      }
      const deliveredSet = new Set(tx.delivered.map((r) => r.toLowerCase()));
      const refused = new Map(tx.refused.map((r) => [r.rcpt.toLowerCase(), r]));
      const out: RecipientResult[] = rcpts.map((rcpt) => {
        const key = rcpt.toLowerCase();
        if (deliveredSet.has(key))
          return { rcpt, status: 'delivered', reply: tx.dataReply ?? '250', remoteHost: label, destination: dest };
        const r = refused.get(key);
        if (r)
          return {
            rcpt,
            status: r.temporary ? 'deferred' : 'failed',
            reply: r.reply,
            remoteHost: label,
            destination: dest,
          };
        return {
          rcpt,
          status: 'deferred',
          reply: '451 4.3.0 no reply for this recipient',
          remoteHost: label,
          destination: dest,
        };
      });
      // Bookkeeping only: a Redis error here must not turn the remote 250 into a tempfail (and a resend).
      if (failure421 !== undefined) await this.deps.limits.recordFailure(dest, failure421).catch(() => false);
      else if (!bookkept) await this.deps.limits.recordSuccess(dest).catch(() => undefined);
      return out;
    }
    // No host took the transaction.
    const reply = last?.reply ?? '451 4.4.4 no usable host for destination';
    if (!last || last.temporary) {
      if (!(last && last.reply.includes('connection limit'))) await this.deps.limits.recordFailure(dest, reply);
      return all('deferred', reply);
    }
    return all('failed', reply);
  }
}
