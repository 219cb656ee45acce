import { ACTIONS, type Action, type AttachmentPolicyConfig, type Match, type Rule } from './config.js';
import { extensionsOf, hasDecoyDoubleExtension, normaliseName } from './filename.js';
import { findMismatch, KNOWN_EXTENSIONS, type Mismatch, type TrueType } from './truetype.js';

/**
 * The rules, applied to one file (a MIME part or a file inside an archive). First matching rule wins; a dry-run
 * rule is recorded and skipped, so the decision is the one the policy without it would make.
 */

export interface FileFacts {
  /** Normalised name ('' when the part has none). */
  readonly name: string;
  readonly extensions: readonly string[];
  /** Declared Content-Type (MIME parts only). */
  readonly declaredType: string | undefined;
  readonly trueType: TrueType;
  readonly inArchive: boolean;
  readonly mismatch: Mismatch | undefined;
  readonly doubleExtension: boolean;
}

export function fileFacts(
  rawName: string | undefined,
  declaredType: string | undefined,
  tt: TrueType,
  inArchive: boolean,
): FileFacts {
  const name = rawName ? normaliseName(rawName) : '';
  const extensions = extensionsOf(name);
  const last = extensions[extensions.length - 1];
  return {
    name,
    extensions,
    declaredType,
    trueType: tt,
    inArchive,
    mismatch: findMismatch(tt, last, declaredType),
    doubleExtension: hasDecoyDoubleExtension(extensions, KNOWN_EXTENSIONS),
  };
}

export interface Decision {
  /** Rule name, or a built-in: `unlisted`, `no-rule` (block-list default), `max-attachment-size`, ... */
  readonly rule: string;
  readonly action: Action;
  /** Why, in words (for the notice and the verdict reason). */
  readonly why: string;
  /** Dry-run rules that matched: what they would have done. */
  readonly dryRun?: readonly { readonly rule: string; readonly action: Action }[];
}

export const severity = (a: Action): number => ACTIONS.indexOf(a);

/** The more severe of two decisions (the first on a tie), keeping both dry-run records. */
export function worse(a: Decision, b: Decision): Decision {
  const w = severity(b.action) > severity(a.action) ? b : a;
  const dry = [...(a.dryRun ?? []), ...(b.dryRun ?? [])];
  return dry.length ? { ...w, dryRun: dry } : w;
}

function typeMatches(patterns: readonly string[], mime: string, ext?: string): boolean {
  return patterns.some((raw) => {
    const p = raw.toLowerCase();
    if (p === ext || p === mime) return true;
    return p.endsWith('/*') && mime.startsWith(p.slice(0, -1));
  });
}

function extensionMatches(patterns: readonly string[], exts: readonly string[]): boolean {
  if (exts.length === 0) return false;
  const tail = exts.join('.');
  return patterns.some((raw) => {
    const p = raw.toLowerCase().replace(/^\./, '');
    return p.includes('.') ? tail === p || tail.endsWith(`.${p}`) : exts[exts.length - 1] === p;
  });
}

export function matches(m: Match, f: FileFacts): boolean {
  if (m.inArchive !== undefined && m.inArchive !== f.inArchive) return false;
  if (m.trueType && !typeMatches(m.trueType, f.trueType.mime, f.trueType.ext)) return false;
  if (m.extension && !extensionMatches(m.extension, f.extensions)) return false;
  if (m.declaredType && !(f.declaredType && typeMatches(m.declaredType, f.declaredType))) return false;
  if (m.doubleExtension !== undefined && m.doubleExtension !== f.doubleExtension) return false;
  if (m.mismatch !== undefined && m.mismatch !== (f.mismatch !== undefined)) return false;
  return true;
}

function describe(r: Rule, f: FileFacts): string {
  const bits: string[] = [];
  if (r.match.mismatch && f.mismatch) bits.push(`${f.mismatch.claim}, content is ${f.trueType.ext}`);
  else if (r.match.doubleExtension) bits.push(`double extension .${f.extensions.slice(-2).join('.')}`);
  else bits.push(`type ${f.trueType.ext}`);
  return `rule ${r.name} (${bits.join(', ')})`;
}

export function decide(cfg: AttachmentPolicyConfig, f: FileFacts): Decision {
  const dryRun: { rule: string; action: Action }[] = [];
  const withDry = (d: Decision): Decision => (dryRun.length ? { ...d, dryRun } : d);
  for (const r of cfg.rules) {
    if (!matches(r.match, f)) continue;
    if (r.dryRun) {
      dryRun.push({ rule: r.name, action: r.action });
      continue;
    }
    return withDry({ rule: r.name, action: r.action, why: describe(r, f) });
  }
  if (cfg.mode === 'block-list') return withDry({ rule: 'no-rule', action: 'allow', why: 'no rule matched' });
  const why = `type ${f.trueType.ext} is not on the allow-list`;
  if (cfg.unlisted.dryRun) {
    dryRun.push({ rule: 'unlisted', action: cfg.unlisted.action });
    return withDry({ rule: 'unlisted', action: 'allow', why });
  }
  return withDry({ rule: 'unlisted', action: cfg.unlisted.action, why });
}
