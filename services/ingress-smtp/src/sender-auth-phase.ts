import {
  TOPICS,
  trackingEvent,
  type PipelineMessage,
  type StageVerdict,
  type TrackingEvent,
  type Verdict,
} from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import {
  SenderAuth,
  type AuthDecision,
  type AuthResults,
  type SenderAuthConfig,
  type SmtpReply,
  type SpfResult,
} from '@mailgate/sender-auth';
import { context, type Context, type Meter, type Tracer } from '@opentelemetry/api';
import { SmtpReplyError, replyOf } from './replies.js';

/**
 * Sender authentication inside the SMTP transaction (issue 18; trade-off in docs/architecture.md): SPF at
 * MAIL FROM, DKIM/ARC/DMARC at end of DATA before the 250. phases/mail.ts (`mailSenderAuth`) and phases/data.ts
 * (`endOfData`) call the two hooks below and apply the answer; everything the answer means (reply, quarantine,
 * envelope verdict, tracking fields) is decided here.
 */

/** What MAIL FROM learned, kept in the transaction for end of DATA. */
export interface MailFromAuth {
  readonly spf?: SpfResult;
  readonly decision: AuthDecision;
  /** Not checked at all (ingress.trustedNetworks, SMTP AUTH, senderAuth.exempt.networks). */
  readonly exempt?: string;
}

export interface SessionAuthFacts {
  readonly ip: string;
  readonly helo: string;
  readonly mailFrom: string;
  readonly authenticated: boolean;
  /** The client is in ingress.trustedNetworks: an internal relay, not checked. */
  readonly trusted: boolean;
}

/** The outcome of end of DATA, applied by ingress. */
export type DataAuthOutcome =
  | { readonly refuse: SmtpReplyError; readonly reason: string }
  | {
      readonly refuse?: undefined;
      /** The message to queue: forged Authentication-Results removed, ours prepended (and the tag header). */
      readonly raw: Buffer;
      /** `mailgate.quarantine` instead of `mailgate.inbound` (DMARC p=quarantine and similar). */
      readonly topic: string;
      /** The ingress verdict for the envelope (details.auth = full results and decision). */
      readonly verdict: StageVerdict;
      /** Compact result words for the tracking `received` event (and the `quarantined` event when held). */
      readonly event: Readonly<Record<string, unknown>>;
      readonly quarantined: boolean;
    };

export interface SenderAuthPhase {
  readonly auth: SenderAuth;
  /** Time spent in the checks, ms, most recent samples (bounded; the benchmark reads them). */
  readonly stats: { readonly mailFromMs: number[]; readonly dataMs: number[] };
  atMailFrom(s: SessionAuthFacts, ctx: Context): Promise<{ state: MailFromAuth; refuse?: SmtpReplyError }>;
  atEndOfData(
    s: SessionAuthFacts & { readonly mailFromState: MailFromAuth | undefined },
    body: Buffer,
    ctx: Context,
  ): Promise<DataAuthOutcome>;
  close(): void;
}

/** sender-auth's configured reply (its own text), carried like every other refusal. */
function smtpError(r: SmtpReply): SmtpReplyError {
  return new SmtpReplyError(replyOf(r));
}

/** Result words only: what tracking shows and filters on (`auth=fail`). */
export function authSummary(results: AuthResults | undefined, d: AuthDecision): Record<string, unknown> {
  const dkim = results?.dkim?.signatures ?? [];
  return {
    ...(results?.spf ? { spf: results.spf.result } : {}),
    ...(results?.dkim
      ? {
          dkim: dkim.length === 0 ? 'none' : dkim.map((s) => s.result).join(','),
          ...(dkim.length ? { dkimDomains: [...new Set(dkim.map((s) => s.domain))] } : {}),
        }
      : {}),
    ...(results?.dmarc
      ? { dmarc: results.dmarc.result, ...(results.dmarc.fromDomain ? { dmarcDomain: results.dmarc.fromDomain } : {}) }
      : {}),
    ...(results?.arc ? { arc: results.arc.result } : {}),
    action: d.action,
    reason: d.reason,
    ...(d.failedOpen?.length ? { failedOpen: d.failedOpen } : {}),
    ...(d.dryRun && d.wouldBe ? { dryRun: true, wouldBe: d.wouldBe.action, wouldBeReason: d.wouldBe.reason } : {}),
  };
}

/**
 * Counts DNS tempfails per message across the sender's SMTP retries (key: MAIL FROM + Message-ID), for
 * `temperror.failOpenAfterAttempts`. Per ingress replica and bounded: a retry that lands on another replica starts
 * from zero there, which only delays the fail-open, never skips the check.
 */
class AttemptCounter {
  private readonly counts = new Map<string, number>();
  constructor(private readonly max = 50_000) {}
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  hit(key: string): void {
    const n = this.get(key) + 1;
    this.counts.delete(key);
    this.counts.set(key, n);
    if (this.counts.size > this.max) this.counts.delete(this.counts.keys().next().value as string);
  }
  clear(key: string): void {
    this.counts.delete(key);
  }
}

function messageIdOf(body: Buffer): string {
  const head = body.subarray(0, Math.min(body.length, 64 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const m = /^message-id:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/im.exec(end === -1 ? head : head.slice(0, end));
  return m ? m[1]!.replace(/\s+/g, ' ').trim() : '';
}

export function createSenderAuthPhase(o: {
  config: SenderAuthConfig;
  hostname: string;
  instance: string;
  log: Logger;
  tracer?: Tracer;
  meter?: Meter;
}): SenderAuthPhase {
  if (o.config.verifyAt === 'pipeline') {
    // Decided in docs/architecture.md: the stage variant is not built; refusing to start beats silently not
    // checking DKIM/DMARC at all.
    throw new Error('senderAuth.verifyAt: "pipeline" is not available yet; use "data" (the default)');
  }
  const auth = new SenderAuth(o.config, {
    hostname: o.hostname,
    ...(o.tracer ? { tracer: o.tracer } : {}),
    ...(o.meter ? { meter: o.meter } : {}),
  });
  const attempts = new AttemptCounter();
  const stats = { mailFromMs: [] as number[], dataMs: [] as number[] };
  const sample = (a: number[], ms: number) => a.length < 200_000 && a.push(ms);
  const dur = o.meter?.createHistogram('mailgate_ingress_auth_duration_seconds', {
    description: 'sender authentication time inside the SMTP transaction (MAIL FROM: SPF; DATA: DKIM/ARC/DMARC)',
    unit: 's',
    advice: {
      explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
    },
  });
  const exemptOf = (s: SessionAuthFacts): string | undefined =>
    s.trusted
      ? 'trusted network (ingress.trustedNetworks)'
      : (auth.exemptReason({ clientIp: s.ip, authenticated: s.authenticated }) ?? undefined);

  return {
    auth,
    stats,
    async atMailFrom(s, ctx) {
      const exempt = exemptOf(s);
      if (exempt)
        return { state: { exempt, decision: { action: 'accept', reason: `exempt: ${exempt}`, method: 'exempt' } } };
      const t0 = performance.now();
      const r = await context.with(ctx, () =>
        auth.atMailFrom({ ip: s.ip, helo: s.helo, mailFrom: s.mailFrom, authenticated: s.authenticated }),
      );
      const took = performance.now() - t0;
      dur?.record(took / 1000, { phase: 'mail-from' });
      sample(stats.mailFromMs, took);
      const state: MailFromAuth = { ...(r.spf ? { spf: r.spf } : {}), decision: r.decision };
      const d = r.decision;
      if ((d.action === 'reject' || d.action === 'tempfail') && d.reply) {
        o.log.info({ ip: s.ip, from: s.mailFrom, spf: r.spf?.result, reason: d.reason }, 'MAIL FROM refused: SPF');
        return { state, refuse: smtpError(d.reply) };
      }
      return { state };
    },

    async atEndOfData(s, body, ctx) {
      const t0 = performance.now();
      const exempt = s.mailFromState?.exempt ?? exemptOf(s);
      let results: AuthResults | undefined;
      let decision: AuthDecision;
      let raw: Buffer;
      if (exempt) {
        // Not checked, but a forged Authentication-Results with our id must not travel on either.
        raw = auth.sanitize(body).raw;
        decision = { action: 'accept', reason: `exempt: ${exempt}`, method: 'exempt' };
      } else {
        const key = `${s.mailFrom}|${messageIdOf(body)}`;
        const r = await context.with(ctx, () =>
          auth.atEndOfData({
            raw: body,
            ip: s.ip,
            helo: s.helo,
            mailFrom: s.mailFrom,
            authenticated: s.authenticated,
            attempts: attempts.get(key),
            ...(s.mailFromState?.spf ? { spf: s.mailFromState.spf } : {}),
          }),
        );
        ({ raw, decision } = r);
        results = r.results;
        if (decision.action === 'tempfail') attempts.hit(key);
        else attempts.clear(key);
      }
      const ms = performance.now() - t0;
      dur?.record(ms / 1000, { phase: 'data' });
      if (!exempt) sample(stats.dataMs, ms);
      const summary = authSummary(results, decision);
      if ((decision.action === 'reject' || decision.action === 'tempfail') && decision.reply) {
        o.log.info(
          { ip: s.ip, from: s.mailFrom, auth: summary },
          'message refused at end of DATA: sender authentication',
        );
        return { refuse: smtpError(decision.reply), reason: decision.reason };
      }
      const quarantined = decision.action === 'quarantine';
      const verdict: Verdict = quarantined
        ? { kind: 'quarantine', reason: `sender authentication: ${decision.reason}` }
        : { kind: 'pass' };
      return {
        raw,
        topic: quarantined ? TOPICS.quarantine : TOPICS.inbound,
        quarantined,
        event: summary,
        verdict: {
          stage: 'ingress-smtp',
          verdict,
          at: new Date().toISOString(),
          durationMs: Math.round(ms * 100) / 100,
          host: o.instance,
          details: { auth: { ...(results ? { results } : {}), decision } },
          ...(decision.failedOpen?.length ? { failedOpen: true } : {}),
        },
      };
    },
    close: () => auth.close(),
  };
}

/** The `quarantined` tracking event for a message ingress holds itself (same shape as the bus runner's). */
export function quarantinedEvent(msg: PipelineMessage, verdict: StageVerdict, host: string): TrackingEvent {
  return trackingEvent('quarantined', msg, {
    service: 'ingress-smtp',
    host,
    at: msg.envelope.receivedAt,
    details: { stage: 'ingress-smtp', verdict: verdict.verdict },
  });
}
