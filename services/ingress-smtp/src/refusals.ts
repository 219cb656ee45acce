import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { eventRecord, type OutRecord } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';

/**
 * Mail refused during the SMTP session (relay denied, DNSBL, unknown recipient, size, rate…) as `refused` tracking
 * events, so a help-desk search finds "the mail from bob@ at 10:02" even though no message id was ever issued.
 *
 * Best effort by design, and isolated from the accept path:
 * - `record()` never awaits and never throws: the SMTP reply is sent at once, whatever Kafka does;
 * - events wait in a bounded buffer flushed on a timer through their OWN producer (service.ts), so a refusal flood
 *   or a failed events produce can neither delay nor fail the durable produce behind a `250`;
 * - when the buffer is full (a flood, or Kafka away) new refusals are dropped and counted
 *   (`mailgate_ingress_refusal_events_dropped_total`): the `mailgate_ingress_refused_total` counter still has them.
 * Refusals of one SMTP transaction share one tracking id (a relay attempt to 50 addresses is one entry).
 */
export interface RefusalFacts {
  /** The metric reason: relay-denied, recipient-unknown, dnsbl, size, message-rate, … */
  readonly reason: string;
  readonly listener: string;
  readonly clientIp: string;
  /** `<code> <text>` as sent to the client. */
  readonly reply: string;
  /** SMTP phase: connect, mail, rcpt, data. */
  readonly phase: 'connect' | 'auth' | 'mail' | 'rcpt' | 'data';
  readonly helo?: string | undefined;
  readonly mailFrom?: string | undefined;
  readonly rcptTo?: readonly string[] | undefined;
  readonly traceId?: string | undefined;
  /** Refusals with the same group object (the SMTP transaction) share one tracking id. */
  readonly group?: object | undefined;
}

export interface RefusalRecorder {
  record(f: RefusalFacts): void;
  /** Send what is buffered (shutdown flush); never rejects. */
  flush(): Promise<void>;
  readonly dropped: number;
}

export interface RefusalRecorderOptions {
  readonly send: (records: OutRecord[]) => Promise<void>;
  readonly instance: string;
  readonly log: Logger;
  readonly maxPending?: number;
  readonly flushIntervalMs?: number;
  readonly onDrop?: () => void;
}

export function createRefusalRecorder(o: RefusalRecorderOptions): RefusalRecorder {
  const maxPending = o.maxPending ?? 1000;
  const ids = new WeakMap<object, string>();
  let pending: OutRecord[] = [];
  let inflight: Promise<void> | null = null;
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;

  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (inflight || pending.length === 0) return inflight ?? Promise.resolve();
    const batch = pending;
    pending = [];
    inflight = o
      .send(batch)
      .catch((err: Error) => {
        dropped += batch.length;
        o.log.warn({ err: err.message, events: batch.length }, 'refusal tracking events not produced (dropped)');
      })
      .finally(() => {
        inflight = null;
        if (pending.length) schedule();
      });
    return inflight;
  };
  const schedule = () => {
    timer ??= setTimeout(() => void flush(), o.flushIntervalMs ?? 200);
    timer.unref();
  };

  return {
    get dropped() {
      return dropped;
    },
    record(f) {
      try {
        if (pending.length >= maxPending) {
          dropped++;
          o.onDrop?.();
          return;
        }
        let id = f.group ? ids.get(f.group) : undefined;
        if (!id) {
          id = newMessageId();
          if (f.group) ids.set(f.group, id);
        }
        const e: TrackingEvent = {
          type: 'refused',
          messageId: id,
          ...(f.traceId ? { traceId: f.traceId } : {}),
          at: new Date().toISOString(),
          service: 'ingress-smtp',
          host: o.instance,
          ...(f.mailFrom !== undefined ? { mailFrom: f.mailFrom } : {}),
          ...(f.rcptTo?.length ? { rcptTo: [...f.rcptTo] } : {}),
          clientIp: f.clientIp,
          details: {
            reason: f.reason,
            reply: f.reply,
            phase: f.phase,
            listener: f.listener,
            ...(f.helo ? { helo: f.helo } : {}),
          },
        };
        pending.push(eventRecord(e));
        schedule();
      } catch (err) {
        o.log.debug({ err: (err as Error).message }, 'refusal not recorded');
      }
    },
    flush: async () => {
      while (pending.length || inflight) await flush();
    },
  };
}
