import {
  MAIL_HEADERS,
  pass,
  quarantine,
  reject,
  tempfail,
  type PipelineMessage,
  type Verdict,
} from '@mailgate/contracts';
import type { StageContext, StageFn, StageHooks, StageOutcome } from '@mailgate/bus';
import { CidrList } from '@mailgate/dnsbl';
import { RspamdUnavailableError, topSymbols, type CheckEnvelope, type CheckResult } from '@mailgate/rspamd';
import type { SpamCheckConfig, Thresholds } from './config.js';
import { prefixSubject, prependHeaders, stripHeaders } from './headers.js';
import { noMetrics, type SpamMetrics } from './metrics.js';

/** What the stage needs from rspamd (RspamdClient; a fake in unit tests of the decision logic). */
export interface SpamScanner {
  check(raw: Buffer, env: CheckEnvelope, signal?: AbortSignal): Promise<CheckResult>;
}

export interface SpamCheckStageOptions {
  readonly config: SpamCheckConfig;
  readonly scanner: SpamScanner;
  readonly metrics?: SpamMetrics;
}

/** The decision, by threshold. `skipped`/`unchecked`: not scored (allow-listed / rspamd unavailable, fail-open). */
export type SpamAction = 'pass' | 'tag' | 'quarantine' | 'reject' | 'skipped' | 'unchecked';

/** Every header this stage writes: removed from incoming mail first so a sender cannot pre-set them. */
export const SPAM_HEADERS = [
  MAIL_HEADERS.spamStatus,
  MAIL_HEADERS.spamScore,
  MAIL_HEADERS.spamFlag,
  MAIL_HEADERS.spamScl,
  MAIL_HEADERS.spamSymbols,
] as const;

const round1 = (n: number) => Math.round(n * 10) / 10;
const fmt = (n: number) => round1(n).toFixed(1);

/**
 * Exchange-style spam confidence level from the score and the thresholds in force:
 *   score ≤ 0 → 0; below tag → 1..4; tag..quarantine → 5..6; quarantine..reject → 7..8; ≥ reject → 9.
 * (-1, "trusted, not checked", is given by the stage to skipped senders.) Exchange admins know 5+ as "spam-ish"
 * and 7+ as "spam"; the bands keep that meaning whatever the site's thresholds are.
 */
export function sclOf(score: number, t: Thresholds): number {
  if (score >= t.reject) return 9;
  const band = (lo: number, hi: number, from: number, to: number) =>
    hi <= lo ? from : Math.min(to, from + Math.floor(((score - lo) / (hi - lo)) * (to - from + 1)));
  if (score >= t.quarantine) return band(t.quarantine, t.reject, 7, 8);
  if (score >= t.tag) return band(t.tag, t.quarantine, 5, 6);
  if (score <= 0) return 0;
  return band(0, t.tag, 1, 4);
}

export function actionOf(score: number, t: Thresholds): 'pass' | 'tag' | 'quarantine' | 'reject' {
  return score >= t.reject ? 'reject' : score >= t.quarantine ? 'quarantine' : score >= t.tag ? 'tag' : 'pass';
}

function domainOf(addr: string): string {
  const at = addr.lastIndexOf('@');
  return at === -1 ? '' : addr.slice(at + 1).toLowerCase();
}

/** `user@domain` exact, `domain` exact domain, `.domain` the domain and its subdomains. Case-insensitive. */
function senderMatcher(list: readonly string[]): (from: string) => boolean {
  const exact = new Set(list.filter((s) => s.includes('@')).map((s) => s.toLowerCase()));
  const domains = new Set(list.filter((s) => !s.includes('@') && !s.startsWith('.')).map((s) => s.toLowerCase()));
  const suffixes = list.filter((s) => s.startsWith('.')).map((s) => s.toLowerCase());
  return (from) => {
    if (!from) return false;
    const f = from.toLowerCase();
    const d = domainOf(f);
    return exact.has(f) || domains.has(d) || suffixes.some((s) => d === s.slice(1) || d.endsWith(s));
  };
}

/**
 * The spam-check stage: rspamd scores the message (envelope, client IP, HELO and authenticated user passed as
 * rspamd expects), then by the thresholds in force for the recipients' domains:
 *
 *   score < tag          → pass, X-Spam-Status: No, score header, SCL
 *   tag ≤ score          → pass tagged: X-Spam-Flag: YES, X-Spam-Status: Yes, symbols, optional subject prefix
 *   quarantine ≤ score   → quarantine, reason = score + top symbols
 *   reject ≤ score       → reject verdict (runs after the 250: quarantined and recorded as a rejection, no bounce)
 *   skipped sender       → pass, X-Spam-Status: skipped (reason), SCL -1
 *   rspamd unavailable   → tempfail (held and retried; after maxHoldMs → quarantine "unchecked"), or with failOpen:
 *                          pass with X-Spam-Status: unchecked
 * dryRun (global or per domain) records the would-be action and passes.
 */
export function createSpamCheckStage(o: SpamCheckStageOptions): { fn: StageFn; hooks: StageHooks } {
  const cfg = o.config;
  const metrics = o.metrics ?? noMetrics;
  const skipIps = new CidrList(cfg.skip.ips);
  const skipSender = senderMatcher(cfg.skip.senders);
  const domains = new Map(Object.entries(cfg.domains).map(([d, v]) => [d.toLowerCase(), v]));

  /** The strictest settings over the recipients' domains (one copy goes to all of them). */
  const settingsFor = (rcpt: readonly string[]) => {
    let t: Thresholds = { ...cfg.thresholds };
    let dryRun = cfg.dryRun;
    let prefix = cfg.subjectPrefix;
    const overrides = [...new Set(rcpt.map(domainOf))].map((d) => domains.get(d)).filter((x) => x !== undefined);
    if (overrides.length > 0) {
      const each = overrides.map((ov) => ({ ...cfg.thresholds, ...ov.thresholds }));
      t = {
        tag: Math.min(...each.map((e) => e.tag)),
        quarantine: Math.min(...each.map((e) => e.quarantine)),
        reject: Math.min(...each.map((e) => e.reject)),
      };
      // dry-run only when every recipient's domain is in dry-run: a trial must not weaken another domain's policy.
      dryRun =
        overrides.length === new Set(rcpt.map(domainOf)).size && overrides.every((ov) => ov.dryRun ?? cfg.dryRun);
      prefix = overrides.find((ov) => ov.subjectPrefix !== undefined)?.subjectPrefix ?? prefix;
    }
    return { t, dryRun, prefix };
  };

  const skipReason = (msg: PipelineMessage): string | null => {
    const s = msg.envelope.session;
    if (cfg.skip.authenticated && s.authUser) return 'authenticated';
    if (cfg.skip.trustedNetworks && s.trustedNetwork) return 'trusted network';
    if (skipSender(msg.envelope.mailFrom)) return 'allow-listed sender';
    if (skipIps.size > 0 && skipIps.has(s.clientIp)) return 'allow-listed IP';
    return null;
  };

  const unchecked = (ctx: StageContext, original: Buffer, cause: string, started: number): StageOutcome => {
    ctx.log.error({ cause }, 'SPAM CHECK SKIPPED: message passed UNCHECKED because spamCheck.failOpen is on');
    metrics.failedOpen(cause);
    metrics.action('unchecked', false);
    metrics.duration((Date.now() - started) / 1000, 'unchecked');
    return {
      verdict: pass(),
      raw: prependHeaders(original, [[MAIL_HEADERS.spamStatus, `unchecked (${cause}; fail-open)`]]),
      failedOpen: true,
      details: { result: 'unchecked' satisfies SpamAction, failOpenReason: cause },
    };
  };

  const fn: StageFn = async (msg: PipelineMessage, ctx: StageContext): Promise<StageOutcome> => {
    const started = Date.now();
    const env = msg.envelope;
    const original = stripHeaders(msg.raw, SPAM_HEADERS);

    const skip = skipReason(msg);
    if (skip) {
      metrics.action('skipped', false);
      ctx.span.setAttribute('mailgate.spam.result', 'skipped');
      return {
        verdict: pass(),
        raw: prependHeaders(original, [
          [MAIL_HEADERS.spamStatus, `skipped (${skip})`],
          [MAIL_HEADERS.spamScl, '-1'],
        ]),
        details: { result: 'skipped' satisfies SpamAction, reason: skip, scl: -1 },
      };
    }
    if (original.length > cfg.maxMessageBytes) {
      metrics.action('skipped', false);
      return {
        verdict: pass(),
        raw: prependHeaders(original, [[MAIL_HEADERS.spamStatus, 'skipped (too large)']]),
        details: { result: 'skipped' satisfies SpamAction, reason: 'too large', size: original.length },
      };
    }

    let r: CheckResult;
    try {
      r = await o.scanner.check(
        original,
        {
          from: env.mailFrom,
          rcpt: env.rcptTo,
          ip: env.session.clientIp,
          helo: env.session.helo,
          ...(env.session.clientHostname ? { hostname: env.session.clientHostname } : {}),
          ...(env.session.authUser ? { user: env.session.authUser } : {}),
          queueId: env.id,
        },
        ctx.signal,
      );
    } catch (err) {
      if (ctx.signal.aborted) throw err; // shutting down: the record stays uncommitted and is redelivered
      if (!(err instanceof RspamdUnavailableError)) throw err;
      metrics.rspamdError(err.kind);
      if (cfg.failOpen) return unchecked(ctx, original, `rspamd unavailable: ${err.kind}`, started);
      metrics.duration((Date.now() - started) / 1000, 'tempfail');
      ctx.span.setAttribute('mailgate.spam.result', 'tempfail');
      return {
        verdict: tempfail(`spam check: ${err.message}`),
        details: { result: 'unchecked' satisfies SpamAction, error: err.message },
      };
    }

    const { t, dryRun, prefix } = settingsFor(env.rcptTo);
    const score = r.score;
    const action = actionOf(score, t);
    const scl = sclOf(score, t);
    const top = topSymbols(r, cfg.topSymbols);
    const spammy = action !== 'pass';
    const topText = top.map((s) => `${s.name}(${fmt(s.score)})`).join(', ');
    const headers: [string, string][] = [];
    if (cfg.headers.always || spammy) {
      const tests = top.map((s) => s.name).join(',');
      headers.push(
        [
          MAIL_HEADERS.spamStatus,
          `${spammy ? 'Yes' : 'No'}, score=${fmt(score)} required=${fmt(t.tag)} tests=${tests}`,
        ],
        [MAIL_HEADERS.spamScore, fmt(score)],
        [MAIL_HEADERS.spamScl, String(scl)],
      );
    }
    if (spammy) {
      headers.push([MAIL_HEADERS.spamFlag, 'YES']);
      if (cfg.headers.symbols && top.length > 0) headers.push([MAIL_HEADERS.spamSymbols, topText]);
    }
    let raw = prependHeaders(original, headers);
    if (spammy && prefix && !dryRun) raw = prefixSubject(raw, prefix);

    metrics.score(score);
    metrics.action(action, dryRun);
    metrics.duration((Date.now() - started) / 1000, action);
    ctx.span.setAttributes({
      'mailgate.spam.score': score,
      'mailgate.spam.action': action,
      'mailgate.spam.scl': scl,
      'mailgate.spam.dry_run': dryRun,
    });
    const details: Record<string, unknown> = {
      result: action satisfies SpamAction,
      score: round1(score),
      scl,
      thresholds: t,
      symbols: top.map((s) => ({ name: s.name, score: round1(s.score) })),
      rspamdAction: r.action,
      rspamd: r.endpoint,
      ...(r.scanMs !== undefined ? { scanMs: r.scanMs } : {}),
      ...(dryRun ? { dryRun: true, wouldBe: action } : {}),
    };
    const why = `spam score ${fmt(score)}${topText ? ` (${topText})` : ''}`;
    let verdict: Verdict = pass();
    if (!dryRun && action === 'reject') verdict = reject(`${why} ≥ reject ${fmt(t.reject)}`);
    else if (!dryRun && action === 'quarantine') verdict = quarantine(`${why} ≥ quarantine ${fmt(t.quarantine)}`);
    if (dryRun && (action === 'reject' || action === 'quarantine')) {
      ctx.log.info({ score, action, symbols: topText }, 'spam check dry-run: would have held this message');
    }
    return { verdict, raw, details };
  };

  const hooks: StageHooks = {
    onHoldExpired: (msg, last, heldMs) => {
      const secs = Math.round(heldMs / 1000);
      const original = stripHeaders(msg.raw, SPAM_HEADERS);
      const details = { result: 'unchecked' satisfies SpamAction, heldMs, lastReason: last.reason };
      metrics.action('unchecked', false);
      if (cfg.unchecked === 'pass') {
        metrics.failedOpen('hold-expired');
        return {
          verdict: pass(),
          failedOpen: true,
          raw: prependHeaders(original, [[MAIL_HEADERS.spamStatus, `unchecked (no rspamd answer in ${secs} s)`]]),
          details,
        };
      }
      return {
        verdict: quarantine(`spam check: no rspamd answer after ${secs} s (${last.reason})`),
        raw: prependHeaders(original, [[MAIL_HEADERS.spamStatus, `unchecked (no rspamd answer in ${secs} s)`]]),
        details,
      };
    },
  };
  return { fn, hooks };
}
