import { HarvestGuard, RecipientChecker, type RecipientsConfig } from '@mailgate/recipients';
import type { Logger } from '@mailgate/runtime';
import type { Meter } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import { REPLIES, type SmtpReply } from './replies.js';

/**
 * The RCPT-phase recipient check (ingress.recipients): ask @mailgate/recipients whether an inbound recipient
 * exists, answer unknown ones with 550 5.1.1 after a growing tarpit delay, and drop a client that spent its
 * budget of unknown recipients (421 4.7.0, which also closes the connection). phases/rcpt.ts calls `check` for
 * recipients the relay policy accepted as inbound mail only: relayed (outbound) recipients are not ours to check.
 */

export interface RcptRefusal {
  /** The directory's answer (its code, status and text), or REPLIES.tooManyUnknownRecipients. */
  readonly reply: SmtpReply;
  readonly reason: 'recipient-unknown' | 'recipient-unverifiable' | 'harvest';
}

export interface RecipientPhase {
  /** `unknownSoFar` counts this session's earlier unknown recipients; the phase reports whether to bump it. */
  check(address: string, ip: string, unknownSoFar: number): Promise<{ refusal: RcptRefusal | null; unknown: boolean }>;
  readonly checker: RecipientChecker;
  close(): Promise<void>;
}

/** @mailgate/recipients words its own replies (550 5.1.1, 451 4.4.3); ingress sends them as they are. */
const directoryReply = (d: { code: number; status: string; message: string }): SmtpReply => ({
  code: d.code,
  enhanced: d.status,
  text: d.message,
});

export function createRecipientPhase(opts: {
  config: RecipientsConfig;
  redis: Redis | null;
  hostname: string;
  log: Logger;
  meter?: Meter | undefined;
  /** Tests: how to wait (default setTimeout). */
  sleep?: (ms: number) => Promise<void>;
}): RecipientPhase | null {
  const { config, log } = opts;
  if (config.domains.length === 0) return null;
  const onError = (err: Error) => log.warn({ err: err.message }, 'recipient check: redis error');
  const checker = new RecipientChecker(config, { redis: opts.redis, hostname: opts.hostname, onError });
  const guard = new HarvestGuard(config.harvest, opts.redis, onError);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const m = opts.meter;
  const lookups = m?.createCounter('mailgate_ingress_recipient_checks', {
    description: 'recipient checks at RCPT by result (accept/unknown/unavailable) and cache (hit/miss)',
  });
  const tarpitMs = m?.createCounter('mailgate_ingress_tarpit_ms', {
    description: 'total delay added to unknown-recipient replies (directory-harvest tarpit), ms',
  });
  const drops = m?.createCounter('mailgate_ingress_harvest_drops', {
    description: 'sessions dropped for exceeding the unknown-recipient budget of their client IP',
  });

  return {
    checker,
    close: () => checker.close(),
    async check(address, ip, unknownSoFar) {
      const d = await checker.check(address);
      lookups?.add(1, { result: d.action, cache: d.cached ? 'hit' : 'miss' });
      if (d.action === 'accept') return { refusal: null, unknown: false };
      if (d.action === 'unavailable') {
        log.warn({ ip, rcpt: address, err: d.error }, 'recipient could not be verified: 451');
        return {
          refusal: { reply: directoryReply(d), reason: 'recipient-unverifiable' },
          unknown: false,
        };
      }
      const v = await guard.unknownRecipient(ip, unknownSoFar + 1);
      if (v.drop) {
        drops?.add(1);
        log.warn({ ip, rcpt: address, count: v.count }, 'unknown-recipient budget exceeded: dropping session');
        return {
          refusal: { reply: REPLIES.tooManyUnknownRecipients, reason: 'harvest' },
          unknown: true,
        };
      }
      if (v.delayMs > 0) {
        tarpitMs?.add(v.delayMs);
        await sleep(v.delayMs);
      }
      log.info({ ip, rcpt: address, delayMs: v.delayMs }, 'recipient unknown');
      return {
        refusal: { reply: directoryReply(d), reason: 'recipient-unknown' },
        unknown: true,
      };
    },
  };
}
