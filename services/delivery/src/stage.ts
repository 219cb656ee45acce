import type { OutRecord, StageFn } from '@mailgate/bus';
import { pass, tempfail } from '@mailgate/contracts';
import { traceparentOf } from '@mailgate/telemetry';
import type { DeliveryEngine } from './deliver.js';
import {
  dsnFor,
  nextAttemptAt,
  RetryStore,
  type EventPart,
  type RetryEntry,
  type RetrySchedule,
  type RetryScheduler,
} from '@mailgate/delivery-queue';
import { attemptEvents } from './outcome.js';
import type { OutboundSigner } from './signing.js';

export interface DeliveryStageDeps {
  readonly engine: DeliveryEngine;
  readonly store: RetryStore;
  readonly scheduler: RetryScheduler;
  readonly schedule: RetrySchedule;
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  /** Outbound DKIM signing (senderAuth.signing); null/absent = send as is. */
  readonly signer?: OutboundSigner | null | undefined;
}

/**
 * The delivery stage: attempt every recipient once, then hand what is left to the retry queue.
 *
 *  - delivered recipients: marker written right after the remote 250 (inside the engine);
 *  - permanently failed recipients: a DSN to the sender, returned as an extra record so the runner produces it
 *    atomically with the commit (none for `<>` senders);
 *  - temporarily failed recipients: stored with the raw message in the Redis retry store and scheduled as a
 *    bullmq job. From then on the retry worker owns them, and the Kafka record is done (`pass`).
 *
 * A Kafka redelivery of the same record (crash before the commit) skips recipients already delivered (markers)
 * and recipients already owned by the retry queue. Any infrastructure error (Redis) → `tempfail`: the runner holds
 * the record and tries again; nothing is passed on unrecorded (fail closed).
 */
export function createDeliveryStage(d: DeliveryStageDeps): StageFn {
  return async (original, ctx) => {
    const env = original.envelope;
    try {
      const signed = d.signer ? await d.signer.sign(original) : null;
      const msg = signed?.msg ?? original;
      // The retry store's entry is read in the round trip that takes the claim (see DeliveryEngine.deliver).
      let stored = null as RetryEntry | null;
      // Recipients the retry queue already owns get their job (re-)created even when this attempt fails, as when
      // the entry was read before the attempt: a lost job must not wait for the reconciler.
      const rescheduleOwned = async () => {
        if (stored && stored.pending.size > 0) await d.scheduler.schedule(env.id, stored.nextAttemptAt);
      };
      let results;
      try {
        results = await d.engine.deliver(msg, env.rcptTo, {
          queued: {
            key: d.store.key(env.id),
            owned: (hash) => {
              stored = RetryStore.fromHash(env.id, hash);
              return new Set(stored?.pending.keys());
            },
          },
        });
      } catch (err) {
        await rescheduleOwned().catch(() => undefined); // the attempt's own error decides the outcome
        throw err;
      }
      await rescheduleOwned();
      const now = Date.now();
      const deferred = results.filter((r) => r.status === 'deferred');
      const failed = results.filter((r) => r.status === 'failed');
      let next: number | undefined;
      if (deferred.length > 0) {
        next = nextAttemptAt(d.schedule, 1, now, now);
        await d.store.add(env, msg.raw, new Map(deferred.map((r) => [r.rcpt, r.reply])), next, deferred[0]!.reply);
        await d.scheduler.schedule(env.id, next);
      }
      const extraRecords: OutRecord[] = [];
      const events: EventPart[] = [];
      const dsn = dsnFor(msg, failed, 'failed', {
        reportingMta: d.reportingMta,
        postmaster: d.postmaster,
        instance: ctx.host,
        traceparent: traceparentOf(ctx.span),
      });
      if (dsn) {
        extraRecords.push(dsn.record);
        events.push(dsn.event);
      }
      events.unshift(
        ...attemptEvents(results, {
          attempt: 1,
          nextAttemptAt: next,
          dsnId: dsn?.id ?? (failed.length > 0 ? null : undefined),
        }),
      );
      const count = (s: string) => results.filter((r) => r.status === s).length;
      return {
        verdict: pass(),
        details: {
          delivered: count('delivered'),
          deferred: deferred.length,
          bounced: failed.length,
          ...(stored ? { alreadyQueued: stored.pending.size } : {}),
          ...(signed?.signatures.length ? { dkim: signed.signatures } : {}),
          ...(signed?.arcInstance ? { arc: signed.arcInstance } : {}),
          ...(next ? { nextAttemptAt: new Date(next).toISOString() } : {}),
        },
        events,
        extraRecords,
      };
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'delivery could not record its outcome: holding the record');
      return { verdict: tempfail(`delivery bookkeeping failed: ${(err as Error).message}`) };
    }
  };
}
