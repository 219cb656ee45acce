// One file (~630 lines): one class running SPF, DKIM, DMARC and ARC for a session and a message with shared
// deadlines, spans, metrics and the DNS failure record; the policy, DNS and results are modules of their own.
import { normalizeIp } from '@mailgate/dnsbl';
import {
  metrics,
  SpanStatusCode,
  trace,
  type Counter,
  type Histogram,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { arc as mailauthArc, dkimVerify, dmarc as mailauthDmarc, spf as mailauthSpf } from 'mailauth';
import type { ARCResult, DKIMResult, DKIMVerifyResult, DMARCResult } from 'mailauth';
import net from 'node:net';
import type { SenderAuthConfig } from './config.js';
import { authResultsHeader, removeAuthResults, removeFields } from './auth-results.js';
import { AuthDns, type TrackedResolver } from './dns.js';
import { headerFields, unfold } from './header-bytes.js';
import { decide, isExemptSession, type AuthDecision, type DecisionContext } from './policy.js';
import { aligned, orgDomain } from './org-domain.js';
import { unsignedHeaderSection } from './unsigned.js';
import type {
  ArcClaims,
  ArcResult,
  AuthResults,
  DkimResults,
  DkimResultWord,
  DkimSignatureResult,
  DmarcPolicy,
  DmarcResult,
  SpfResult,
  SpfResultWord,
} from './results.js';

export interface SpfInput {
  /** Client IP (v4, v6, or v4-mapped v6). */
  readonly ip: string;
  /** HELO/EHLO argument as given. */
  readonly helo: string;
  /** MAIL FROM address without brackets; '' (or '<>') for the null sender: the HELO identity is checked. */
  readonly mailFrom: string;
}

export interface MessageInput extends SpfInput {
  /** The message as received (header + body), before our own headers are added. */
  readonly raw: Buffer;
  /** The SPF result from MAIL FROM time; checked again here when absent (and SPF is enabled). */
  readonly spf?: SpfResult;
}

export interface SenderAuthOptions {
  /** authserv-id when `config.authservId` is null (the gateway host name). */
  readonly hostname: string;
  readonly tracer?: Tracer;
  /** Where `mailgate_auth_results_total{method,result}` and `mailgate_auth_check_duration_seconds{method}` go. */
  readonly meter?: Meter;
  /** Share one DNS client (and its cache) between several verifiers; default: a new one from config.dns. */
  readonly dns?: AuthDns;
}

/** The SMTP session facts the phase helpers need (ingress has them in its session; a stage in the envelope). */
export interface SessionInput extends SpfInput {
  readonly authenticated?: boolean;
  /** Earlier tempfails of this message (temperror.failOpenAfterAttempts). */
  readonly attempts?: number;
  /** pct= sampling key; default: the Message-ID. */
  readonly sampleKey?: string;
}

function contextOf(s: SessionInput): Omit<DecisionContext, 'phase'> {
  return {
    clientIp: s.ip,
    ...(s.authenticated !== undefined ? { authenticated: s.authenticated } : {}),
    ...(s.attempts !== undefined ? { attempts: s.attempts } : {}),
    ...(s.sampleKey !== undefined ? { sampleKey: s.sampleKey } : {}),
  };
}

/** The Message-ID field value (unfolded, trimmed), for pct sampling that is stable across SMTP retries. */
function messageIdOf(raw: Buffer): string | undefined {
  const f = headerFields(raw).fields.find((x) => x.key === 'message-id');
  const v = f ? unfold(f.rawValue).trim() : '';
  return v || undefined;
}

const METER = 'mailgate-sender-auth';

/** Outcome of a promise raced against a deadline. */
type Timed<T> = { ok: true; value: T } | { ok: false; timedOut: true } | { ok: false; error: unknown };

async function within<T>(ms: number, p: Promise<T>): Promise<Timed<T>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Timed<T>>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, timedOut: true }), Math.max(0, ms));
    timer.unref?.();
  });
  try {
    return await Promise.race([
      p.then(
        (value): Timed<T> => ({ ok: true, value }),
        (error: unknown): Timed<T> => ({ ok: false, error }),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const SPF_WORDS = new Set<SpfResultWord>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror']);
const POLICIES = new Set<DmarcPolicy>(['none', 'quarantine', 'reject']);

/** Tag-value list (DMARC record, ARC-Authentication-Results are not this): `k=v; k=v`, keys lower-cased. */
function tagList(record: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of record.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    m.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  return m;
}

function asPolicy(v: unknown): DmarcPolicy | undefined {
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  return POLICIES.has(s as DmarcPolicy) ? (s as DmarcPolicy) : undefined;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Inbound sender authentication. `checkSpf` at MAIL FROM, `verifyMessage` after DATA (DKIM, ARC, DMARC with the
 * SPF result). Both always resolve (never throw): failures become temperror/permerror results, so the policy
 * decides what a DNS failure means (fail closed by default). One span and one metric sample per check.
 */
export class SenderAuth {
  readonly dns: AuthDns;
  readonly authservId: string;
  private readonly ownDns: boolean;
  private readonly tracer: Tracer;
  private readonly results: Counter;
  private readonly durations: Histogram;

  constructor(
    readonly config: SenderAuthConfig,
    opts: SenderAuthOptions,
  ) {
    this.authservId = config.authservId ?? opts.hostname;
    this.tracer = opts.tracer ?? trace.getTracer('@mailgate/sender-auth');
    this.ownDns = !opts.dns;
    this.dns = opts.dns ?? new AuthDns(config.dns);
    const meter = opts.meter ?? metrics.getMeter(METER);
    this.results = meter.createCounter('mailgate_auth_results_total', {
      description: 'Sender authentication results by method (spf, dkim, dmarc, arc) and result',
    });
    this.durations = meter.createHistogram('mailgate_auth_check_duration_seconds', {
      description: 'Time per sender authentication check, DNS included',
      unit: 's',
    });
  }

  private record(method: string, result: string, ms: number): void {
    this.results.add(1, { method, result });
    this.durations.record(ms / 1000, { method });
  }

  private async spanned<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T> {
    return this.tracer.startActiveSpan(`sender-auth ${name}`, async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: errText(err) });
        throw err;
      } finally {
        span.end();
      }
    });
  }

  /** SPF (RFC 7208) for MAIL FROM, or for the HELO name when MAIL FROM is the null sender. */
  async checkSpf(input: SpfInput): Promise<SpfResult> {
    return this.spanned('spf', async (span) => {
      const t0 = performance.now();
      const ip = normalizeIp(input.ip) ?? input.ip;
      const mailFrom = input.mailFrom.replace(/^<|>$/g, '').trim();
      const helo = input.helo.trim();
      const identity: SpfResult['identity'] = mailFrom === '' ? 'helo' : 'mailfrom';
      const sender = identity === 'helo' ? `postmaster@${helo}` : mailFrom;
      const domain = (sender.slice(sender.lastIndexOf('@') + 1) || helo).toLowerCase();
      const track = this.dns.track();
      let res: Omit<SpfResult, 'durationMs'>;
      const base = { identity, domain, mailFrom: sender, helo, ip };
      if (!net.isIP(ip)) {
        res = { ...base, result: 'permerror', reason: `not an IP address: ${input.ip}` };
      } else if (identity === 'helo' && (helo === '' || helo.startsWith('[') || net.isIP(helo) !== 0)) {
        // RFC 7208 §2.3: a HELO that is not a domain name gives no SPF identity.
        res = { ...base, result: 'none', reason: 'null sender and HELO is not a domain name' };
      } else {
        const out = await within(
          this.config.timeouts.spfMs,
          mailauthSpf({
            sender,
            ip,
            helo,
            mta: this.authservId,
            maxResolveCount: this.config.spf.maxLookups,
            maxVoidCount: this.config.spf.maxVoidLookups,
            resolver: track.resolve,
          }),
        );
        if (out.ok) {
          const v = out.value;
          const word = SPF_WORDS.has(v.status.result as SpfResultWord)
            ? (v.status.result as SpfResultWord)
            : 'temperror';
          res = {
            ...base,
            domain: v.domain || domain,
            result: word,
            ...(v.rr ? { record: v.rr } : {}),
            ...(v.status.comment ? { reason: v.status.comment } : {}),
            ...(v.lookups ? { lookups: v.lookups.count } : {}),
          };
        } else if ('timedOut' in out) {
          res = { ...base, result: 'temperror', reason: `SPF evaluation exceeded ${this.config.timeouts.spfMs} ms` };
        } else {
          res = { ...base, result: 'temperror', reason: errText(out.error) };
        }
      }
      const durationMs = Math.round((performance.now() - t0) * 100) / 100;
      span.setAttributes({
        'mailgate.auth.method': 'spf',
        'mailgate.auth.result': res.result,
        'mailgate.auth.domain': res.domain,
        'mailgate.auth.identity': identity,
        'mailgate.auth.dns_queries': track.queries,
      });
      this.record('spf', res.result, durationMs);
      return { ...res, durationMs };
    });
  }

  /**
   * DKIM (every signature), ARC chain, and DMARC for the From domain using `spf` (or a fresh SPF check).
   * Disabled checks are absent from the result.
   */
  async verifyMessage(input: MessageInput): Promise<AuthResults> {
    const deadline = Date.now() + this.config.timeouts.messageMs;
    const left = () => deadline - Date.now();
    const spf = input.spf ?? (this.config.spf.enabled ? await this.checkSpf(input) : undefined);

    const dkimTrack = this.dns.track();
    const parsed = await this.spanned('dkim', async (span) => {
      const t0 = performance.now();
      const out = await within(
        left(),
        // Unsigned: mailauth needs the header section only (unsigned.ts); signed: the whole message.
        dkimVerify(unsignedHeaderSection(input.raw) ?? input.raw, {
          resolver: dkimTrack.resolve,
          sender: input.mailFrom || undefined,
          minBitLength: this.config.dkim.minRsaBits,
        }),
      );
      const durationMs = Math.round((performance.now() - t0) * 100) / 100;
      const verified = out.ok ? out.value : undefined;
      const fromDomains = [
        ...new Set((verified?.headerFrom ?? []).map((a) => a.slice(a.lastIndexOf('@') + 1).toLowerCase())),
      ];
      let dkim: DkimResults;
      if (out.ok) {
        dkim = { signatures: this.dkimSignatures(out.value, fromDomains[0]), durationMs };
      } else {
        // Could not finish (deadline or a parser error): one temperror entry so the policy knows DKIM is unknown.
        const reason = 'timedOut' in out ? `DKIM exceeded ${this.config.timeouts.messageMs} ms` : errText(out.error);
        dkim = {
          signatures: [{ result: 'temperror', domain: '', selector: '', algorithm: '', aligned: false, reason }],
          durationMs,
        };
      }
      span.setAttributes({
        'mailgate.auth.method': 'dkim',
        'mailgate.auth.signatures': dkim.signatures.length,
        'mailgate.auth.result': dkim.signatures.map((s) => s.result).join(',') || 'none',
        'mailgate.auth.dns_queries': dkimTrack.queries,
      });
      if (dkim.signatures.length === 0) this.record('dkim', 'none', durationMs);
      for (const s of dkim.signatures) this.record('dkim', s.result, durationMs);
      return { verified, dkim, fromDomains };
    });

    const results: { -readonly [K in keyof AuthResults]: AuthResults[K] } = {
      fromDomains: parsed.fromDomains,
      ...(spf ? { spf } : {}),
      ...(this.config.dkim.enabled ? { dkim: parsed.dkim } : {}),
    };

    let arcRaw: ARCResult | undefined;
    if (this.config.arc.enabled) {
      const r = await this.spanned('arc', async (span) => {
        const res = await this.checkArc(parsed.verified, dkimTrack, left());
        span.setAttributes({
          'mailgate.auth.method': 'arc',
          'mailgate.auth.result': res.result.result,
          ...(res.result.sealer ? { 'mailgate.auth.sealer': res.result.sealer } : {}),
        });
        this.record('arc', res.result.result, res.result.durationMs);
        return res;
      });
      results.arc = r.result;
      arcRaw = r.raw;
    }

    if (this.config.dmarc.enabled) {
      results.dmarc = await this.spanned('dmarc', async (span) => {
        // With DKIM switched off, DMARC can only align through SPF.
        const dkimForDmarc = this.config.dkim.enabled ? parsed.dkim : { signatures: [], durationMs: 0 };
        const res = await this.checkDmarc(parsed.fromDomains, spf, dkimForDmarc, arcRaw, left());
        span.setAttributes({
          'mailgate.auth.method': 'dmarc',
          'mailgate.auth.result': res.result,
          'mailgate.auth.domain': res.fromDomain,
          ...(res.policy ? { 'mailgate.auth.policy': res.policy } : {}),
        });
        this.record('dmarc', res.result, res.durationMs);
        return res;
      });
    }
    return results;
  }

  /** mailauth's per-signature results → ours, with the corrections documented in the README. */
  private dkimSignatures(v: DKIMVerifyResult, fromDomain: string | undefined): DkimSignatureResult[] {
    const out: DkimSignatureResult[] = [];
    for (const r of v.results as (DKIMResult & Record<string, unknown>)[]) {
      if (!r.signingDomain) continue; // mailauth's placeholder "none" entry for an unsigned message
      const st = r.status;
      const comment = typeof st.comment === 'string' ? st.comment : undefined;
      const algorithm = String(r['algo'] ?? st.header?.['a'] ?? '').toLowerCase();
      let result: DkimResultWord;
      let reason = comment;
      switch (st.result) {
        case 'pass':
          result = 'pass';
          break;
        case 'fail':
          result = 'fail';
          break;
        case 'policy':
          result = 'policy';
          reason = reason ?? (st.policy?.['dkim-rules'] === 'weak-key' ? 'key shorter than minRsaBits' : undefined);
          break;
        case 'temperror':
        case 'temperr':
          result = 'temperror';
          break;
        case 'neutral':
          // RFC 6376 §6.1: a body hash mismatch is a verification failure (mailauth reports neutral); a missing or
          // unusable key is a permanent error (RFC 8601 §2.7.1).
          if (comment === 'body hash did not verify') result = 'fail';
          else if (comment && /^(no key|unknown key|invalid public key)/.test(comment)) result = 'permerror';
          else result = 'neutral';
          break;
        default:
          result = 'neutral';
      }
      const unsigned = typeof st.underSized === 'number' && st.underSized > 0 ? st.underSized : undefined;
      if (result === 'pass' && algorithm === 'rsa-sha1') {
        result = 'policy';
        reason = 'rsa-sha1 signatures are not accepted (RFC 8301)';
      } else if (result === 'pass' && unsigned !== undefined && this.config.dkim.partialBody === 'ignore') {
        result = 'policy';
        reason = `l= leaves ${unsigned} body bytes unsigned`;
      }
      const b = typeof st.header?.['b'] === 'string' ? (st.header['b'] as string) : undefined;
      out.push({
        result,
        domain: r.signingDomain.toLowerCase(),
        selector: r.selector ?? '',
        algorithm,
        ...(typeof r['format'] === 'string' ? { canonicalization: r['format'] } : {}),
        ...(b ? { b } : {}),
        aligned: fromDomain ? aligned(fromDomain, r.signingDomain, 'r') : false,
        ...(unsigned !== undefined ? { unsignedBodyBytes: unsigned } : {}),
        ...(typeof r['modulusLength'] === 'number' ? { keyBits: r['modulusLength'] } : {}),
        ...(reason ? { reason } : {}),
      });
    }
    return out;
  }

  private async checkArc(
    v: DKIMVerifyResult | undefined,
    dkimTrack: TrackedResolver,
    budgetMs: number,
  ): Promise<{ result: ArcResult; raw?: ARCResult }> {
    const t0 = performance.now();
    const ms = () => Math.round((performance.now() - t0) * 100) / 100;
    const data = v?.arc;
    if (!v || !data) {
      return { result: { result: v ? 'none' : 'temperror', durationMs: ms() } };
    }
    const track = this.dns.track();
    const out = await within(
      budgetMs,
      mailauthArc(data as never, { resolver: track.resolve, minBitLength: this.config.dkim.minRsaBits }),
    );
    if (!out.ok) {
      const reason = 'timedOut' in out ? 'ARC validation exceeded the message deadline' : errText(out.error);
      return { result: { result: 'temperror', reason, durationMs: ms() } };
    }
    const r = out.value;
    const last = data.lastEntry ?? (data.chain ? data.chain[data.chain.length - 1] : undefined);
    const sealer = last?.['arc-seal']?.parsed?.d?.value;
    const ams = last?.messageSignature;
    let word: ArcResult['result'] = (['pass', 'fail', 'none'] as const).find((w) => w === r.status.result) ?? 'fail';
    let reason = typeof r.status.comment === 'string' ? r.status.comment : undefined;
    // mailauth folds DNS failures of the seal and AMS keys into "fail": a chain we could not check is temperror.
    const amsTemp = ams?.status?.result === 'temperror';
    if (word === 'fail' && (track.failures.length > 0 || amsTemp)) {
      word = 'temperror';
      const f = track.failures[0] ?? dkimTrack.failures.find((x) => x.name.includes('._domainkey.'));
      reason = f ? `DNS ${f.code} for ${f.name}` : 'DNS failure';
    }
    const result: ArcResult = {
      result: word,
      ...(typeof r.i === 'number' && r.i > 0 ? { instance: r.i } : {}),
      ...(typeof sealer === 'string' ? { sealer: sealer.toLowerCase() } : {}),
      ...(word === 'pass' ? { claims: arcClaims(r.authenticationResults) } : {}),
      ...(reason ? { reason } : {}),
      durationMs: ms(),
    };
    return { result, raw: r };
  }

  private async checkDmarc(
    fromDomains: readonly string[],
    spf: SpfResult | undefined,
    dkim: DkimResults,
    arcRaw: ARCResult | undefined,
    budgetMs: number,
  ): Promise<DmarcResult> {
    const t0 = performance.now();
    const ms = () => Math.round((performance.now() - t0) * 100) / 100;
    if (fromDomains.length === 0) {
      return { result: 'permerror', fromDomain: '', reason: 'no From address', durationMs: ms() };
    }
    const spfDomains = spf?.result === 'pass' ? [spf.domain] : [];
    const dkimPass = dkim.signatures.filter((s) => s.result === 'pass');
    // RFC 7489 §6.6.1: with several From domains, apply DMARC to each and keep the strictest outcome.
    const per = await Promise.all(
      fromDomains.slice(0, 5).map((d) => this.dmarcOne(d, spfDomains, dkimPass, arcRaw, budgetMs)),
    );
    const rank = (r: DmarcResult) =>
      r.result === 'fail'
        ? 10 + (r.policy === 'reject' ? 2 : r.policy === 'quarantine' ? 1 : 0)
        : r.result === 'temperror'
          ? 5
          : r.result === 'permerror'
            ? 3
            : r.result === 'none'
              ? 2
              : 1;
    const worst = per.reduce((a, b) => (rank(b) > rank(a) ? b : a));
    return { ...worst, durationMs: ms() };
  }

  private async dmarcOne(
    fromDomain: string,
    spfDomains: string[],
    dkimPass: readonly DkimSignatureResult[],
    arcRaw: ARCResult | undefined,
    budgetMs: number,
  ): Promise<DmarcResult> {
    const track = this.dns.track();
    const out = await within(
      budgetMs,
      mailauthDmarc({
        headerFrom: fromDomain,
        spfDomains,
        dkimDomains: dkimPass.map((s) => ({ domain: s.domain })),
        ...(arcRaw ? { arcResult: arcRaw } : {}),
        resolver: track.resolve,
      }),
    );
    const base = { fromDomain, orgDomain: orgDomain(fromDomain), durationMs: 0 };
    if (!out.ok) {
      const reason = 'timedOut' in out ? 'DMARC lookup exceeded the message deadline' : errText(out.error);
      return { ...base, result: 'temperror', reason };
    }
    const r = out.value as (DMARCResult & { error?: string }) | false;
    if (!r) return { ...base, result: 'permerror', reason: 'no single From address' };
    if (r.status.result === 'temperror') {
      const f = track.failures[0];
      return { ...base, result: 'temperror', reason: f ? `DNS ${f.code} for ${f.name}` : (r.error ?? 'DNS failure') };
    }
    if (r.status.result === 'none' || !r.rr) return { ...base, result: 'none' };
    const tags = tagList(r.rr);
    const p = asPolicy(r.p);
    const sp = asPolicy(tags.get('sp')) ?? p;
    // RFC 7489 §6.6.3: a record without a valid p= is treated as p=none (when it has rua=) or as no record.
    const policy = asPolicy(r.policy) ?? (p ? sp : undefined) ?? 'none';
    const adkim = tags.get('adkim')?.toLowerCase() === 's' ? 's' : 'r';
    const aspf = tags.get('aspf')?.toLowerCase() === 's' ? 's' : 'r';
    // Alignment is computed here, not taken from mailauth 4.13, whose getAlignment() treats adkim=s/aspf=s as
    // relaxed (it is passed an options object where it expects a boolean).
    const dkimAligned = dkimPass.find((s) => aligned(fromDomain, s.domain, adkim))?.domain;
    const spfAligned = spfDomains.find((d) => aligned(fromDomain, d, aspf));
    const pctRaw = tags.get('pct');
    const pct = pctRaw !== undefined && /^\d+$/.test(pctRaw) ? Math.min(100, Number(pctRaw)) : 100;
    return {
      ...base,
      result: dkimAligned || spfAligned ? 'pass' : 'fail',
      policy,
      ...(p ? { p } : {}),
      ...(sp ? { sp } : {}),
      pct,
      record: r.rr,
      alignment: {
        ...(spfAligned ? { spf: spfAligned } : {}),
        ...(dkimAligned ? { dkim: dkimAligned } : {}),
        adkim,
        aspf,
      },
      ...(dkimAligned || spfAligned
        ? {}
        : { reason: `no ${adkim === 's' || aspf === 's' ? 'strictly ' : ''}aligned SPF or DKIM pass` }),
    };
  }

  /** Why this session is not checked at all (authenticated, exempt network), or null. Skip the DNS work then. */
  exemptReason(ctx: Omit<DecisionContext, 'phase'>): string | null {
    return isExemptSession(this.config, ctx);
  }

  /** The policy decision with this verifier's config (see `decide`). */
  decide(results: AuthResults, ctx: DecisionContext): AuthDecision {
    return decide(results, this.config, ctx);
  }

  /**
   * Removes what a sender must not be able to forge: Authentication-Results claiming our authserv-id (or one of
   * `removeAuthservIds`) and our tag header. Run it on the message as received, before adding `headers()`.
   */
  sanitize(raw: Buffer): { raw: Buffer; removed: number } {
    const a = removeAuthResults(raw, [this.authservId, ...this.config.removeAuthservIds]);
    const b = removeFields(a.raw, [this.config.tagHeader]);
    return { raw: b.raw, removed: a.removed + b.removed };
  }

  /** The header fields to prepend (CRLF-terminated): Authentication-Results, and the tag header for `tag`. */
  headers(results: AuthResults, decision?: AuthDecision, opts: { remoteIp?: string } = {}): string {
    let h = authResultsHeader(this.authservId, results, {
      ...(decision?.disposition ? { disposition: decision.disposition } : {}),
      ...(opts.remoteIp ? { remoteIp: opts.remoteIp } : {}),
    });
    // The tag header is an action (mail-server rules file on it): not added in a dry run.
    if (decision?.action === 'tag') {
      // eslint-disable-next-line no-control-regex
      const reason = decision.reason.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 300);
      h += `${this.config.tagHeader}: ${reason}\r\n`;
    }
    return h;
  }

  /**
   * Everything ingress does at MAIL FROM, in one call: skip exempt sessions, check SPF, decide. A `reject` or
   * `tempfail` decision carries the reply to send; keep `spf` for `atEndOfData`.
   */
  async atMailFrom(s: SessionInput): Promise<{ spf?: SpfResult; decision: AuthDecision }> {
    const exempt = this.exemptReason(contextOf(s));
    if (exempt) return { decision: { action: 'accept', reason: `exempt: ${exempt}`, method: 'exempt' } };
    if (!this.config.enabled || !this.config.spf.enabled)
      return { decision: { action: 'accept', reason: 'not checked' } };
    const spf = await this.checkSpf(s);
    return { spf, decision: this.decide({ spf }, { ...contextOf(s), phase: 'mail-from' }) };
  }

  /**
   * Everything at end of DATA (phase `data`, before the 250) or in a stage (phase `pipeline`): remove forged
   * headers, verify, decide, and prepend Authentication-Results (+ the tag header). `raw` in the result is the
   * message to pass on (or to quarantine); `results` go into the envelope / tracking.
   */
  async atEndOfData(
    input: SessionInput & { readonly raw: Buffer; readonly spf?: SpfResult; readonly phase?: 'data' | 'pipeline' },
  ): Promise<{ raw: Buffer; results?: AuthResults; decision: AuthDecision }> {
    const clean = this.sanitize(input.raw).raw;
    const exempt = this.exemptReason(contextOf(input));
    if (exempt) return { raw: clean, decision: { action: 'accept', reason: `exempt: ${exempt}`, method: 'exempt' } };
    if (!this.config.enabled) return { raw: clean, decision: { action: 'accept', reason: 'not checked' } };
    const results = await this.verifyMessage({ ...input, raw: clean });
    const ctx: DecisionContext = {
      ...contextOf(input),
      phase: input.phase ?? 'data',
      sampleKey: input.sampleKey ?? messageIdOf(clean) ?? `${input.ip}|${input.mailFrom}`,
    };
    const decision = this.decide(results, ctx);
    const headers = this.headers(results, decision, { remoteIp: input.ip });
    return { raw: Buffer.concat([Buffer.from(headers, 'latin1'), clean]), results, decision };
  }

  close(): void {
    if (this.ownDns) this.dns.close();
  }
}

/** The claims of the newest ARC-Authentication-Results, from mailauth's parsed form. */
function arcClaims(aar: unknown): ArcClaims {
  const a = (aar ?? {}) as Record<string, unknown>;
  const get = (o: unknown, ...path: string[]): string | undefined => {
    let cur: unknown = o;
    for (const k of path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
    return typeof cur === 'string' ? cur.toLowerCase() : undefined;
  };
  const dkimList = Array.isArray(a['dkim']) ? (a['dkim'] as unknown[]) : [];
  const claims: ArcClaims = {
    ...(get(a, 'dmarc', 'result') ? { dmarc: get(a, 'dmarc', 'result') } : {}),
    ...(get(a, 'dmarc', 'header', 'from') ? { dmarcFrom: get(a, 'dmarc', 'header', 'from') } : {}),
    ...(get(a, 'spf', 'result') ? { spf: get(a, 'spf', 'result') } : {}),
    ...(get(a, 'spf', 'smtp', 'mailfrom') ? { spfMailFrom: get(a, 'spf', 'smtp', 'mailfrom') } : {}),
    dkim: dkimList.map((d) => {
      const domain = get(d, 'header', 'd') ?? get(d, 'header', 'i')?.replace(/^.*@/, '');
      return { result: get(d, 'result') ?? 'none', ...(domain ? { domain } : {}) };
    }),
  };
  return claims;
}
