import { pass, quarantine, reject, type Verdict } from '@mailgate/contracts';
import type { StageContext, StageFn, StageOutcome } from '@mailgate/bus';
import type { PipelineMessage } from '@mailgate/contracts';
import { inspectArchive, isArchiveType, type ArchiveIssueKind } from './archive.js';
import type { Action, AttachmentPolicyConfig } from './config.js';
import { bodyReadings, isBodyText, leaves, walkMime, type MimePart, type ParsedMessage } from '@mailgate/mail';
import { decide, fileFacts, severity, worse, type Decision, type FileFacts } from './policy.js';
import { rewrite, type Removal } from './rewrite.js';
import { detectTrueType, type TrueType } from './truetype.js';

/**
 * The attachment-policy stage: walk the MIME structure, judge every attachment (and every file inside archive
 * attachments) by the rules, then
 *   - reject (→ quarantine topic, rule recorded) if any file's action is reject,
 *   - otherwise strip / silently delete the offending parts and pass the rewritten message,
 *   - otherwise pass the message unchanged (byte-identical: no `raw` in the outcome).
 * The walk (@mailgate/mail walkMime) reads the message the most dangerous way: every reading a mail client may
 * take (duplicate headers, comment readings, lenient multipart detection, odd transfer encodings, headers running
 * into the body) is judged, and the worst decision counts. A message whose structure cannot be walked gets the
 * configured `malformed` outcome; so does an ambiguous message (anomalies recorded) carrying a part to strip or
 * delete — cutting one reading's bytes does not remove the file from the others. Nothing thrown by the walk escapes
 * (bad input is an answer, not a crash).
 */

/** Inner files listed per attachment in the verdict details (the rest are counted). */
const MAX_INNER_LISTED = 20;

export interface InnerReport {
  readonly path: string;
  readonly trueType: string;
  readonly rule: string;
  readonly action: Action;
  readonly dryRun?: Decision['dryRun'];
}

export interface PartReport {
  /** IMAP-style part number ('' = the message body itself). */
  readonly part: string;
  readonly filename: string;
  readonly declaredType: string;
  readonly trueType: string;
  readonly size: number;
  readonly rule: string;
  readonly action: Action;
  readonly why: string;
  readonly dryRun?: Decision['dryRun'];
  /** Files inside an archive attachment that matched something other than a plain allow, or a dry-run rule. */
  readonly inner?: InnerReport[];
  readonly innerFiles?: number;
}

export interface PolicyResult {
  readonly verdict: Verdict;
  readonly details: Record<string, unknown>;
  readonly raw?: Buffer;
  readonly failedOpen?: boolean;
}

const ISSUE_RULES: Record<ArchiveIssueKind, string> = {
  limits: 'archive-limits',
  encrypted: 'encrypted-archive',
  unreadable: 'unreadable-archive',
};

/** Detected types that are just structured text (a text/xml body is still a body). */
const TEXTUAL = (tt: TrueType) =>
  tt.ext === 'text' ||
  tt.ext === 'unknown' ||
  tt.ext === 'empty' ||
  tt.mime.startsWith('text/') ||
  tt.mime === 'application/xml';

interface Judged {
  readonly part: MimePart;
  readonly decision: Decision;
  readonly report: PartReport;
}

interface ReadingVerdict {
  readonly decision: Decision;
  readonly filename: string;
  readonly declaredType: string;
  readonly trueType: string;
  readonly size: number;
  readonly inner?: InnerReport[];
  readonly innerFiles?: number;
}

/** Judges one reading of a part's content under every name and declared type a reader may take. */
async function judgeReading(
  cfg: AttachmentPolicyConfig,
  part: MimePart,
  content: Buffer,
  names: readonly (string | undefined)[],
  bodyText: boolean,
): Promise<ReadingVerdict | null> {
  const tt = await detectTrueType(content);
  if (bodyText && TEXTUAL(tt)) return null;
  let d: Decision | undefined;
  let facts: FileFacts | undefined;
  for (const name of names) {
    for (const declared of part.contentTypes) {
      const f = fileFacts(name, declared, tt, false);
      const fd = decide(cfg, f);
      if (!d || severity(fd.action) > severity(d.action)) {
        d = d ? worse(d, fd) : fd;
        facts = f;
      } else d = worse(d, fd);
    }
  }
  if (!d || !facts) return null;
  if (content.length > cfg.limits.maxAttachmentBytes) {
    d = worse(d, {
      rule: 'max-attachment-size',
      action: cfg.limits.action,
      why: `${content.length} bytes is over the ${cfg.limits.maxAttachmentBytes}-byte limit`,
    });
  }
  let inner: InnerReport[] | undefined;
  let innerFiles: number | undefined;
  // No need to open an archive the message is rejected for anyway.
  if (cfg.archives.inspect && isArchiveType(tt) && d.action !== 'reject') {
    const report = await inspectArchive(content, tt, facts.name || `part-${part.path || 'body'}`, cfg.archives);
    inner = [];
    innerFiles = report.files.length;
    for (const f of report.files) {
      const fd = decide(cfg, fileFacts(f.name, undefined, f.trueType, true));
      if (fd.action !== 'allow' || fd.dryRun) {
        if (inner.length < MAX_INNER_LISTED) {
          inner.push({
            path: f.path,
            trueType: f.trueType.ext,
            rule: fd.rule,
            action: fd.action,
            ...(fd.dryRun ? { dryRun: fd.dryRun } : {}),
          });
        }
        d = worse(d, { ...fd, why: `${f.path}: ${fd.why}` });
      }
    }
    for (const issue of report.issues) {
      const rule = ISSUE_RULES[issue.kind];
      const action =
        issue.kind === 'limits'
          ? cfg.archives.limitAction
          : issue.kind === 'encrypted'
            ? cfg.archives.encryptedAction
            : cfg.archives.unreadableAction;
      if (inner.length < MAX_INNER_LISTED) inner.push({ path: issue.path, trueType: '-', rule, action });
      d = worse(d, { rule, action, why: `${issue.path}: ${issue.detail}` });
    }
  }
  return {
    decision: d,
    filename: facts.name,
    declaredType: facts.declaredType ?? part.contentType,
    trueType: tt.ext,
    size: content.length,
    ...(inner ? { inner, innerFiles } : {}),
  };
}

/** The more severe reading (its facts reported), with the dry-run records of both. */
function worseReading(a: ReadingVerdict | null, b: ReadingVerdict): ReadingVerdict {
  if (!a) return b;
  const w = severity(b.decision.action) > severity(a.decision.action) ? b : a;
  return { ...w, decision: worse(a.decision, b.decision) };
}

/** Judges every reading of a leaf (see bodyReadings); the worst one is the part's decision. */
async function judgePart(cfg: AttachmentPolicyConfig, part: MimePart): Promise<Judged | null> {
  const partNames = part.filenames.length ? part.filenames : [undefined];
  const bodyText = isBodyText(part);
  let worst: ReadingVerdict | null = null;
  for (const r of bodyReadings(part)) {
    // A reading with a name of its own (a uuencode block) is a file whatever the part is.
    const v =
      r.filename !== undefined
        ? await judgeReading(cfg, part, r.content, [r.filename], false)
        : await judgeReading(cfg, part, r.content, partNames, bodyText);
    if (v) worst = worseReading(worst, v);
  }
  if (!worst) return null;
  const d = worst.decision;
  const report: PartReport = {
    part: part.path,
    filename: worst.filename,
    declaredType: worst.declaredType,
    trueType: worst.trueType,
    size: worst.size,
    rule: d.rule,
    action: d.action,
    why: d.why,
    ...(d.dryRun ? { dryRun: d.dryRun } : {}),
    ...(worst.inner ? { inner: worst.inner, innerFiles: worst.innerFiles } : {}),
  };
  return { part, decision: d, report };
}

function noticeFor(j: Judged): string {
  const name = (j.report.filename || '(unnamed)').slice(0, 200);
  return `The attachment "${name}" was removed by the mail gateway's attachment policy: ${j.decision.why.slice(0, 300)}.`;
}

/** The pure policy evaluation of one raw message (the stage function minus the bus wrapping). */
export async function evaluateMessage(cfg: AttachmentPolicyConfig, raw: Buffer): Promise<PolicyResult> {
  let parsed: ParsedMessage;
  let judged: Judged[];
  try {
    parsed = walkMime(raw, cfg.mime);
    judged = [];
    for (const leaf of leaves(parsed.root)) {
      const j = await judgePart(cfg, leaf);
      if (j) judged.push(j);
    }
  } catch (err) {
    // MalformedMimeError, and anything a hostile message might provoke (RangeError on absurd input):
    // never out of the stage — the configured outcome, with the error recorded.
    const error = `${(err as Error).name}: ${(err as Error).message}`;
    const m = cfg.malformed;
    const details = { malformed: true, error };
    if (m.outcome === 'pass') return { verdict: pass(), details, failedOpen: true };
    return { verdict: m.outcome === 'reject' ? reject(m.reason) : quarantine(m.reason), details };
  }
  // Count limit: attachments beyond maxAttachments get limits.action.
  judged = judged.map((j, i) =>
    i < cfg.limits.maxAttachments
      ? j
      : {
          ...j,
          decision: worse(j.decision, {
            rule: 'max-attachments',
            action: cfg.limits.action,
            why: `more than ${cfg.limits.maxAttachments} attachments`,
          }),
        },
  );
  const parts = judged.map((j) => ({
    ...j.report,
    rule: j.decision.rule,
    action: j.decision.action,
    why: j.decision.why,
  }));
  const details: Record<string, unknown> = { mode: cfg.mode, parts };
  if (parsed.warnings.length) details['warnings'] = parsed.warnings;
  if (parsed.anomalies.length) details['anomalies'] = parsed.anomalies.slice(0, 20);
  const dry = judged.flatMap((j) => (j.decision.dryRun ?? []).map((d) => ({ part: j.part.path, ...d })));
  if (dry.length) details['dryRun'] = dry;

  const worst = judged.reduce<Judged | undefined>(
    (w, j) => (!w || severity(j.decision.action) > severity(w.decision.action) ? j : w),
    undefined,
  );
  if (!worst || worst.decision.action === 'allow') return { verdict: pass(), details };
  if (worst.decision.action === 'reject') {
    const name = worst.report.filename || `part ${worst.part.path || 'body'}`;
    return { verdict: reject(`attachment policy: ${worst.decision.why} on "${name.slice(0, 200)}"`), details };
  }
  if (parsed.anomalies.length) {
    // Clients read this message in different ways; cutting the bytes of one reading may leave the file in another.
    // Not an undecidable message (fail-open does not apply): the file is known to be blocked.
    const why = `ambiguous MIME (${parsed.anomalies[0]}) with a part to remove: ${worst.decision.why}`;
    details['malformed'] = true;
    details['error'] = why;
    const reason = `${cfg.malformed.reason}: ${why}`.slice(0, 400);
    return { verdict: cfg.malformed.outcome === 'reject' ? reject(reason) : quarantine(reason), details };
  }
  const removals: Removal[] = judged
    .filter((j) => j.decision.action === 'strip' || j.decision.action === 'silent-delete')
    .map((j) => ({
      part: j.part,
      mode: j.decision.action as 'strip' | 'silent-delete',
      notice: noticeFor(j),
      rule: j.decision.rule,
    }));
  details['removed'] = removals.map((r) => ({ part: r.part.path, mode: r.mode, rule: r.rule }));
  return { verdict: pass(), details, raw: rewrite(raw, parsed, removals, cfg.addHeader) };
}

/** The StageFn: evaluateMessage plus logging of dry-run hits and span attributes. */
export function createPolicyStage(cfg: AttachmentPolicyConfig): StageFn {
  return async (msg: PipelineMessage, ctx: StageContext): Promise<StageOutcome> => {
    const r = await evaluateMessage(cfg, msg.raw);
    const parts = (r.details['parts'] as PartReport[] | undefined) ?? [];
    ctx.span.setAttribute('mailgate.attachments', parts.length);
    if (r.details['dryRun']) ctx.log.info({ dryRun: r.details['dryRun'] }, 'attachment policy dry-run rules matched');
    if (r.details['malformed']) ctx.log.warn({ error: r.details['error'] }, 'malformed MIME');
    return {
      verdict: r.verdict,
      details: r.details,
      ...(r.raw ? { raw: r.raw } : {}),
      ...(r.failedOpen ? { failedOpen: true } : {}),
    };
  };
}
