import { pass, quarantine, reject, tempfail, type PipelineMessage, type Verdict } from '@mailgate/contracts';
import type { StageContext, StageFn, StageHooks, StageOutcome } from '@mailgate/bus';
import { decodedAttachments } from './attachments.js';

/**
 * Our header removed (with folded lines) from the top-level block: a sender must not be able to pre-set "clean",
 * and a re-checked release must not carry our old verdict. Same Buffer when there is nothing to remove.
 */
export function stripHeader(raw: Buffer, name: string): Buffer {
  const lower = name.toLowerCase();
  return removeHeaders(raw, (n) => n === lower);
}
import { ClamdError, ClamdUnavailableError } from './clamd/errors.js';
import type { ScanResult, Scanner, WaitBudget } from './clamd/pool.js';
import type { ClamdVersion } from './clamd/protocol.js';
import type { VirusScanConfig } from './config.js';
import { prependHeader, removeHeaders } from '@mailgate/mail';
import { noMetrics, type ScanMetrics } from './metrics.js';

export interface VirusScanStageOptions {
  readonly config: VirusScanConfig;
  readonly scanner: Scanner;
  /** `gateway.name` and `gateway.hostname`: who vouches for the scan in the header. */
  readonly gateway: { readonly name: string; readonly hostname: string };
  readonly metrics?: ScanMetrics;
}

/** What the scan of one message came to (also `details.result` in the verdict and tracking event). */
export type ScanOutcome = 'clean' | 'infected' | 'too-large' | 'unscannable' | 'failed-open';

interface PartScan {
  /** 'message' or 'attachment <file name>'. */
  readonly part: string;
  readonly result: ScanResult;
}

/** `Heuristics.Encrypted.*` → /^Heuristics\.Encrypted\..*$/i */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 'i');
}

const HEURISTIC = /^(Heuristics|PUA)\./i;
/** clamd's AlertExceedsMax: a file inside went beyond MaxFileSize/MaxScanSize/... and was not fully scanned. */
const LIMITS = /^Heuristics\.Limits\.Exceeded/i;

/**
 * The virus-scan stage: the whole raw message to clamd (which unpacks MIME, archives and attached messages
 * itself), optionally each decoded attachment as well, and a verdict:
 *
 *   clean                        → pass, raw = scan header + original bytes
 *   virus / listed heuristic     → actions.infected (quarantine), signature names in details
 *   larger than streamMaxLength  → actions.tooLarge (quarantine "too large to scan")
 *   no clamd answers             → tempfail (the runner holds and retries; after maxHoldMs → onHoldExpired:
 *                                  actions.unscannable) — or, only with failOpen, pass with a warning header
 *
 * No failure path leads to a plain pass.
 */
export function createVirusScanStage(o: VirusScanStageOptions): { fn: StageFn; hooks: StageHooks } {
  const cfg = o.config;
  const metrics = o.metrics ?? noMetrics;
  const headerName = cfg.header.name;
  const heuristics = cfg.heuristics.map(globToRegExp);
  const by = `${o.gateway.name} ${o.gateway.hostname}`;
  const versionText = (v: ClamdVersion | undefined) => v?.raw ?? 'ClamAV version unknown';
  const header = (raw: Buffer, status: string, v?: ClamdVersion) =>
    prependHeader(raw, headerName, `${status} (${by}; ${versionText(v)})`);
  const policy = (action: 'quarantine' | 'reject', reason: string): Verdict =>
    action === 'reject' ? reject(reason) : quarantine(reason);

  const failOpen = (
    ctx: StageContext,
    original: Buffer,
    reason: string,
    cause: string,
    details: Record<string, unknown>,
    started: number,
  ): StageOutcome => {
    ctx.log.error(
      { reason, cause, size: original.length },
      'VIRUS SCAN SKIPPED: message passed UNSCANNED because virusScan.failOpen is on',
    );
    metrics.failedOpen(reason);
    metrics.scanned('failed_open', (Date.now() - started) / 1000);
    ctx.span.setAttribute('mailgate.virus.failed_open', true);
    return {
      verdict: pass(),
      raw: header(original, `UNSCANNED: ${cause} (fail-open)`),
      failedOpen: true,
      details: { ...details, result: 'failed-open' satisfies ScanOutcome, failOpenReason: cause },
    };
  };

  const tooLarge = (
    ctx: StageContext,
    original: Buffer,
    what: string,
    details: Record<string, unknown>,
    started: number,
    v?: ClamdVersion,
  ): StageOutcome => {
    const reason = `too large to scan: ${what}`;
    const d = { ...details, result: 'too-large' satisfies ScanOutcome, tooLarge: what };
    switch (cfg.actions.tooLarge) {
      case 'pass':
        // The schema allows 'pass' only together with failOpen.
        return failOpen(ctx, original, 'too-large', reason, d, started);
      case 'tempfail':
        metrics.scanned('tempfail', (Date.now() - started) / 1000);
        return { verdict: tempfail(reason), details: d };
      default:
        metrics.scanned('too_large', (Date.now() - started) / 1000);
        return {
          verdict: policy(cfg.actions.tooLarge, reason),
          raw: header(original, `not scanned: ${reason}`, v),
          details: d,
        };
    }
  };

  const fn: StageFn = async (msg: PipelineMessage, ctx: StageContext): Promise<StageOutcome> => {
    const started = Date.now();
    // What we scan and forward: the message without any copy of our header a sender (or an earlier scan of
    // a released message) put there.
    const original = stripHeader(msg.raw, headerName);
    const base: Record<string, unknown> = { size: original.length };
    const limit = cfg.clamd.streamMaxLength;
    if (original.length > limit) {
      return tooLarge(ctx, original, `${original.length} bytes > streamMaxLength ${limit}`, base, started);
    }

    const parts: PartScan[] = [];
    // One wait for clamd sessions per message, not per scan: the record is held while its scans wait.
    const budget: WaitBudget = {};
    try {
      parts.push({ part: 'message', result: await o.scanner.scan(original, ctx.signal, budget) });
      const first = parts[0]!.result;
      if (cfg.scanAttachmentsSeparately && first.kind === 'clean') {
        let attachments: Awaited<ReturnType<typeof decodedAttachments>> = [];
        try {
          attachments = await decodedAttachments(original);
        } catch (err) {
          // clamd already scanned the whole message; a MIME structure we cannot split is recorded, not fatal.
          base['attachmentsError'] = (err as Error).message;
        }
        for (const a of attachments) {
          const r = await o.scanner.scan(a.content, ctx.signal, budget);
          parts.push({ part: `attachment ${a.name}`, result: r });
          if (r.kind !== 'clean') break;
        }
        base['attachmentsScanned'] = attachments.length;
      }
    } catch (err) {
      if (ctx.signal.aborted) throw err; // shutting down: the runner leaves the record uncommitted
      if (!(err instanceof ClamdUnavailableError || err instanceof ClamdError)) throw err;
      // failOpen is for clamd being down. Every endpoint answering but all its sessions busy is load, not an
      // outage: passing unscanned mail because the pipeline is busy would let a flood carry a virus through.
      const busyOnly =
        err instanceof ClamdUnavailableError && err.failures.length > 0 && err.failures.every((f) => f.kind === 'busy');
      // The hold's reason says which: "clamd busy" (add clamds) or "clamd unavailable" (fix clamd).
      const reason = `${busyOnly ? 'clamd busy' : 'clamd unavailable'}: ${err.message}`;
      if (cfg.failOpen && !busyOnly)
        return failOpen(ctx, original, 'unavailable', 'clamd unavailable', { ...base, error: err.message }, started);
      metrics.scanned('tempfail', (Date.now() - started) / 1000);
      ctx.span.setAttribute('mailgate.virus.result', 'tempfail');
      return {
        verdict: tempfail(reason),
        details: { ...base, result: 'unscannable' satisfies ScanOutcome, error: err.message },
      };
    }

    const last = parts[parts.length - 1]!.result;
    const v = last.version ?? parts[0]!.result.version;
    const details: Record<string, unknown> = {
      ...base,
      clamd: last.endpoint,
      ...(v ? { engine: v.engine, database: v.database, databaseDate: v.databaseDate } : {}),
      ...(parts.length > 1 ? { parts: parts.map((p) => ({ part: p.part, result: p.result.kind })) } : {}),
    };

    const sizeLimited = parts.find((p) => p.result.kind === 'size-limit');
    if (sizeLimited) {
      ctx.log.warn(
        { clamd: sizeLimited.result.endpoint, part: sizeLimited.part, streamMaxLength: limit },
        'clamd refused the stream as too large: its StreamMaxLength is below virusScan.clamd.streamMaxLength',
      );
      return tooLarge(ctx, original, `${sizeLimited.part} exceeds clamd's StreamMaxLength`, details, started, v);
    }

    const infected: string[] = [];
    const ignored: string[] = [];
    const limits: string[] = [];
    for (const p of parts) {
      if (p.result.kind !== 'found') continue;
      for (const sig of p.result.signatures) {
        if (LIMITS.test(sig)) limits.push(sig);
        else if (!HEURISTIC.test(sig) || heuristics.some((re) => re.test(sig))) infected.push(sig);
        else ignored.push(sig);
      }
    }
    const signatures = [...new Set(infected)];
    if (ignored.length > 0) details['ignoredHeuristics'] = [...new Set(ignored)];
    ctx.span.setAttribute('mailgate.virus.clamd', last.endpoint);

    if (signatures.length > 0) {
      for (const s of signatures) metrics.infection(s);
      metrics.scanned('infected', (Date.now() - started) / 1000);
      ctx.span.setAttribute('mailgate.virus.result', 'infected');
      ctx.span.setAttribute('mailgate.virus.signatures', signatures);
      ctx.log.info({ signatures, clamd: last.endpoint }, 'virus found');
      return {
        verdict: policy(cfg.actions.infected, `virus found: ${signatures.join(', ')}`),
        raw: header(original, `infected: ${signatures.join(', ')}`, v),
        details: { ...details, result: 'infected' satisfies ScanOutcome, signatures },
      };
    }
    if (limits.length > 0) {
      return tooLarge(
        ctx,
        original,
        `clamd scan limits exceeded (${[...new Set(limits)].join(', ')})`,
        details,
        started,
        v,
      );
    }

    metrics.scanned('clean', (Date.now() - started) / 1000);
    ctx.span.setAttribute('mailgate.virus.result', 'clean');
    const status = ignored.length > 0 ? `clean, ignored heuristics: ${[...new Set(ignored)].join(', ')}` : 'clean';
    return {
      verdict: pass(),
      raw: header(original, status, v),
      details: { ...details, result: 'clean' satisfies ScanOutcome },
    };
  };

  const hooks: StageHooks = {
    onHoldExpired: (msg, last, heldMs) => {
      const secs = Math.round(heldMs / 1000);
      const reason = `unscannable: no scan verdict after ${secs} s (${last.reason})`;
      metrics.scanned('unscannable', 0);
      return {
        verdict: policy(cfg.actions.unscannable, reason),
        raw: header(stripHeader(msg.raw, headerName), `not scanned: unscannable after ${secs} s`),
        details: { result: 'unscannable' satisfies ScanOutcome, heldMs, lastReason: last.reason, size: msg.raw.length },
      };
    },
  };

  return { fn, hooks };
}
