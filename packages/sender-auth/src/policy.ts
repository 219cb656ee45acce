// One file (~310 lines): the decision table (DMARC, SPF/DKIM fallbacks, ARC override, exemptions) is one pure
// function read top to bottom; its candidates rank against each other, so it stays together.
import { CidrList, normalizeIp } from '@mailgate/dnsbl';
import { createHash } from 'node:crypto';
import type { CheckName, ReplyConfig, SenderAuthConfig } from './config.js';
import { aligned, domainMatches } from './org-domain.js';
import type { AuthResults, DmarcPolicy } from './results.js';

/**
 * The policy: what to do with a message given its authentication results. Pure (no I/O, no clock, no
 * randomness: pct sampling hashes a message key), so every rule is unit-tested and the decision is reproducible
 * from the recorded results.
 */

export type AuthAction = 'accept' | 'tag' | 'quarantine' | 'reject' | 'tempfail';

/**
 * Where the decision is taken:
 *  - `mail-from`: after checkSpf, before answering MAIL FROM (only SPF is known);
 *  - `data`: at end of DATA, before the 250 (a reject is a 5xx reply, nothing is bounced);
 *  - `pipeline`: after the 250 (a stage): a reject becomes quarantine, since refusing now would mean a bounce to
 *    a sender that is, by definition, probably forged.
 */
export type DecisionPhase = 'mail-from' | 'data' | 'pipeline';

export interface DecisionContext {
  readonly phase: DecisionPhase;
  /** Client IP: checked against exempt.networks. */
  readonly clientIp?: string;
  /** The session authenticated with SMTP AUTH. */
  readonly authenticated?: boolean;
  /** How many times this message was tempfailed already (SMTP retries seen, or stage retries). */
  readonly attempts?: number;
  /** Stable per-message key for pct sampling (Message-ID, or the gateway id in a stage). */
  readonly sampleKey?: string;
}

export interface SmtpReply {
  readonly code: number;
  /** Enhanced status code (RFC 3463), e.g. 5.7.1. */
  readonly status: string;
  readonly text: string;
}

export interface AuthDecision {
  readonly action: AuthAction;
  /** The SMTP reply for reject/tempfail (the caller may still prefer its own wording). */
  readonly reply?: SmtpReply;
  /** Why, in one line: recorded in tracking and logs. */
  readonly reason: string;
  /** Which method decided (absent for accept without findings). */
  readonly method?: 'spf' | 'dmarc' | 'exempt';
  /** DMARC disposition for Authentication-Results `dis=` (what was done about the domain's policy). */
  readonly disposition?: DmarcPolicy;
  /** Checks whose DNS failure was let through because of temperror.failOpen / failOpenAfterAttempts. */
  readonly failedOpen?: readonly CheckName[];
  /** dryRun: the decision that would have been taken (action is then 'accept'). */
  readonly wouldBe?: Omit<AuthDecision, 'wouldBe' | 'dryRun'>;
  readonly dryRun?: boolean;
}

/** The part of the config the policy reads. */
export type PolicyConfig = Pick<
  SenderAuthConfig,
  'dryRun' | 'exempt' | 'spf' | 'dkim' | 'dmarc' | 'arc' | 'temperror' | 'replies'
>;

const SEVERITY: Record<AuthAction, number> = { accept: 0, tag: 1, quarantine: 2, tempfail: 3, reject: 4 };

const cidrCache = new WeakMap<readonly string[], CidrList>();
function cidrs(list: readonly string[]): CidrList {
  let c = cidrCache.get(list);
  if (!c) {
    c = new CidrList(list);
    cidrCache.set(list, c);
  }
  return c;
}

function fill(r: ReplyConfig, vars: Record<string, string>): SmtpReply {
  return { code: r.code, status: r.status, text: r.text.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m) };
}

/** Deterministic 0..99 from a key: the same message always lands on the same side of pct=. */
export function sampleBucket(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) % 100;
}

/**
 * Whether a session is exempt from checking altogether (trusted network, SMTP AUTH). Callers use it to skip the
 * DNS work; `decide` applies the same rule.
 */
export function isExemptSession(
  cfg: Pick<SenderAuthConfig, 'exempt'>,
  ctx: Omit<DecisionContext, 'phase'>,
): string | null {
  if (ctx.authenticated && cfg.exempt.authenticated) return 'authenticated session';
  const ip = ctx.clientIp ? normalizeIp(ctx.clientIp) : null;
  if (ip) {
    const hit = cidrs(cfg.exempt.networks).find(ip);
    if (hit) return `trusted network ${hit}`;
  }
  return null;
}

interface Candidate {
  action: AuthAction;
  reason: string;
  method?: AuthDecision['method'];
  reply?: SmtpReply;
  disposition?: DmarcPolicy;
}

/**
 * Decides. Rules, in order:
 *  1. exempt sessions (authenticated, exempt.networks) → accept;
 *  2. SPF: fail → spf.onFail (reject only at MAIL FROM/DATA; tag not when DMARC passes), softfail →
 *     spf.onSoftfail; temperror holds only when spf.onFail=reject (the result could be a reject); a domain in
 *     exempt.domains is not judged;
 *  3. DMARC (not at MAIL FROM): fail under p=reject/quarantine (sp= for subdomains, pct= sampled) → onReject /
 *     onQuarantine, unless a trusted ARC sealer vouches; temperror of the record, or of an SPF/DKIM/ARC result that
 *     could turn the fail into a pass, holds the message (fail closed) unless configured to fail open;
 *  4. the most severe candidate wins (reject > tempfail > quarantine > tag > accept);
 *  5. after the 250 (phase pipeline) reject becomes quarantine; dryRun turns everything into accept + wouldBe.
 */
export function decide(results: AuthResults, cfg: PolicyConfig, ctx: DecisionContext): AuthDecision {
  const d = decideReal(results, cfg, ctx);
  if (!cfg.dryRun || d.action === 'accept') return d;
  return {
    action: 'accept',
    reason: `dry run: would ${d.action}: ${d.reason}`,
    dryRun: true,
    wouldBe: d,
    ...(d.method ? { method: d.method } : {}),
    ...(d.disposition ? { disposition: 'none' as const } : {}),
    ...(d.failedOpen ? { failedOpen: d.failedOpen } : {}),
  };
}

function decideReal(results: AuthResults, cfg: PolicyConfig, ctx: DecisionContext): AuthDecision {
  const exempt = isExemptSession(cfg, ctx);
  if (exempt) return { action: 'accept', reason: `exempt: ${exempt}`, method: 'exempt' };

  const failedOpen = new Set<CheckName>();
  const attempts = ctx.attempts ?? 0;
  const after = cfg.temperror.failOpenAfterAttempts;
  /** A DNS failure of `check` decides the outcome: hold, unless that check fails open. */
  const holdOn = (check: CheckName, reason: string): Candidate | null => {
    if (cfg.temperror.failOpen.includes(check) || (after !== null && attempts >= after)) {
      failedOpen.add(check);
      return null;
    }
    return {
      action: 'tempfail',
      reason,
      method: check === 'spf' ? 'spf' : 'dmarc',
      reply: fill(cfg.replies.tempfail, { result: 'temperror' }),
    };
  };

  const cands: Candidate[] = [];
  const spf = results.spf;
  const spfExempt = spf ? domainMatches(spf.domain, cfg.exempt.domains) : undefined;
  // A DMARC pass means an aligned identity vouches for the message (typically DKIM on forwarded mail, where SPF
  // fails by design): an SPF warning would be noise then. An SPF reject is the operator's explicit choice and stays.
  const dmarcPass = ctx.phase !== 'mail-from' && results.dmarc?.result === 'pass';
  if (spf && cfg.spf.enabled && !spfExempt) {
    const vars = { domain: spf.domain, ip: spf.ip, result: spf.result };
    if (spf.result === 'fail') {
      if (cfg.spf.onFail === 'reject' && ctx.phase !== 'pipeline') {
        cands.push({
          action: 'reject',
          method: 'spf',
          reason: `SPF fail for ${spf.domain} from ${spf.ip}`,
          reply: fill(cfg.replies.spfFail, vars),
        });
      } else if (cfg.spf.onFail !== 'ignore' && !dmarcPass) {
        cands.push({ action: 'tag', method: 'spf', reason: `SPF fail for ${spf.domain} from ${spf.ip}` });
      }
    } else if (spf.result === 'softfail' && cfg.spf.onSoftfail === 'tag' && !dmarcPass) {
      cands.push({ action: 'tag', method: 'spf', reason: `SPF softfail for ${spf.domain} from ${spf.ip}` });
    } else if (spf.result === 'temperror' && cfg.spf.onFail === 'reject') {
      const c = holdOn('spf', `SPF temperror for ${spf.domain}: ${spf.reason ?? 'DNS failure'}`);
      if (c) cands.push(c);
    }
  }

  if (ctx.phase !== 'mail-from' && results.dmarc && cfg.dmarc.enabled) {
    const c = dmarcCandidate(results, cfg, ctx, holdOn);
    if (c) cands.push(c);
  }

  let best: Candidate | undefined;
  for (const c of cands) if (!best || SEVERITY[c.action] > SEVERITY[best.action]) best = c;
  const fo = failedOpen.size ? { failedOpen: [...failedOpen] } : {};
  if (!best) {
    const reason = failedOpen.size ? `accepted; failed open on ${[...failedOpen].join(', ')} DNS failure` : 'accepted';
    const dis = results.dmarc?.result === 'fail' ? { disposition: 'none' as const } : {};
    return { action: 'accept', reason, ...dis, ...fo };
  }
  if (best.action === 'reject' && ctx.phase === 'pipeline') {
    // After the 250 a refusal can only be a bounce, and a bounce to a forged sender is backscatter.
    best = { ...best, action: 'quarantine', reason: `${best.reason} (after acceptance: quarantined, not bounced)` };
    delete best.reply;
  }
  return {
    action: best.action,
    reason: best.reason,
    ...(best.method ? { method: best.method } : {}),
    ...(best.reply && (best.action === 'reject' || best.action === 'tempfail') ? { reply: best.reply } : {}),
    ...(best.disposition ? { disposition: best.disposition } : {}),
    ...fo,
  };
}

function dmarcCandidate(
  results: AuthResults,
  cfg: PolicyConfig,
  ctx: DecisionContext,
  holdOn: (check: CheckName, reason: string) => Candidate | null,
): Candidate | null {
  const dmarc = results.dmarc!;
  const from = dmarc.fromDomain;
  if (from && domainMatches(from, cfg.exempt.domains)) return null;
  if (dmarc.result === 'temperror')
    return holdOn('dmarc', `DMARC record lookup failed for ${from}: ${dmarc.reason ?? 'DNS failure'}`);
  if (dmarc.result !== 'fail') return null;

  let policy: DmarcPolicy = dmarc.policy ?? 'none';
  let sampled = '';
  if (cfg.dmarc.honourPct && (dmarc.pct ?? 100) < 100 && policy !== 'none') {
    const bucket = sampleBucket(ctx.sampleKey ?? `${from}|${results.spf?.ip ?? ''}|${results.spf?.mailFrom ?? ''}`);
    if (bucket >= (dmarc.pct ?? 100)) {
      // RFC 7489 §6.6.4: outside the sample, apply the next less strict policy.
      policy = policy === 'reject' ? 'quarantine' : 'none';
      sampled = ` (outside pct=${dmarc.pct} sample)`;
    }
  }
  if (policy === 'none') return null;
  const action = policy === 'reject' ? cfg.dmarc.onReject : cfg.dmarc.onQuarantine;
  if (action === 'ignore') return null;

  // Could a result we could not get have made DMARC pass? Then we do not know enough to act: hold.
  const adkim = dmarc.alignment?.adkim ?? 'r';
  const aspf = dmarc.alignment?.aspf ?? 'r';
  const dkimUnknown = (results.dkim?.signatures ?? []).find(
    (s) => s.result === 'temperror' && (s.domain === '' || aligned(from, s.domain, adkim)),
  );
  if (dkimUnknown) {
    const c = holdOn(
      'dkim',
      `DMARC ${policy} for ${from} pending: DKIM temperror${dkimUnknown.domain ? ` for ${dkimUnknown.domain}` : ''}`,
    );
    if (c) return c;
    return null; // failed open: the fail is not trusted enough to act on
  }
  const spf = results.spf;
  if (spf?.result === 'temperror' && aligned(from, spf.domain, aspf)) {
    const c = holdOn('spf', `DMARC ${policy} for ${from} pending: SPF temperror for ${spf.domain}`);
    if (c) return c;
    return null;
  }

  // A trusted forwarder / mailing list vouches for the original authentication.
  const override = arcOverride(results, cfg);
  if (override === 'temperror') {
    const c = holdOn('arc', `DMARC ${policy} for ${from} pending: ARC temperror`);
    if (c) return c;
    return null;
  }
  if (override) {
    return {
      action: 'accept',
      method: 'dmarc',
      reason: `DMARC fail for ${from} overridden: ${override}`,
      disposition: 'none',
    };
  }

  const reason = `DMARC fail for ${from} under p=${policy}${sampled}`;
  if (action === 'reject') {
    return {
      action: 'reject',
      method: 'dmarc',
      reason,
      reply: fill(cfg.replies.dmarcReject, { domain: from, ip: results.spf?.ip ?? '', result: 'fail' }),
      disposition: ctx.phase === 'pipeline' ? 'quarantine' : 'reject',
    };
  }
  if (action === 'quarantine') return { action: 'quarantine', method: 'dmarc', reason, disposition: 'quarantine' };
  return { action: 'tag', method: 'dmarc', reason, disposition: 'none' };
}

/** A reason string when a trusted sealer vouches for the original authentication, 'temperror', or null. */
function arcOverride(results: AuthResults, cfg: PolicyConfig): string | 'temperror' | null {
  const arc = results.arc;
  if (!arc || !cfg.arc.enabled || cfg.arc.trustedSealers.length === 0) return null;
  if (arc.result === 'temperror') return 'temperror';
  if (arc.result !== 'pass' || !arc.sealer) return null;
  const trusted = domainMatches(arc.sealer, cfg.arc.trustedSealers);
  if (!trusted) return null;
  const from = results.dmarc!.fromDomain;
  const c = arc.claims ?? {};
  if (c.dmarc === 'pass' && (!c.dmarcFrom || aligned(from, c.dmarcFrom, 'r'))) {
    return `trusted ARC sealer ${arc.sealer} saw dmarc=pass (i=${arc.instance ?? '?'})`;
  }
  const dk = c.dkim?.find((x) => x.result === 'pass' && x.domain && aligned(from, x.domain, 'r'));
  if (dk) return `trusted ARC sealer ${arc.sealer} saw an aligned dkim=pass for ${dk.domain}`;
  const sd = c.spfMailFrom?.slice(c.spfMailFrom.lastIndexOf('@') + 1);
  if (c.spf === 'pass' && sd && aligned(from, sd, 'r')) {
    return `trusted ARC sealer ${arc.sealer} saw an aligned spf=pass for ${sd}`;
  }
  return null;
}
