// One file (~480 lines): the one MIME walk (below) and the readings it offers (leaves, bodies, scan targets)
// are one parser's view of a message; the header, structured-field and decoding parts are separate modules.
import { decodeBody, encodingReadings, uuencodeName, type Decoding } from './decode.js';
import { lineBreakOf, MalformedMimeError, readHeaderBlock, type HeaderBlock } from './headers.js';
import { decodeHeaderText, parseStructured, type StructuredValue } from './structured.js';

/**
 * The one MIME walk. It finds where things are — header blocks, boundaries, bodies — with byte offsets (so a part
 * can be cut out and every other byte stays identical), and it reads a message the most dangerous way: where
 * readers disagree, every plausible reading is kept so the policy judges all of them.
 *
 *  - A Content-Type starting `multipart/` (whatever follows: `multipart/mix=ed`, `multipart/mixed junk`), or any
 *    type carrying a `boundary` parameter whose delimiter occurs in the body, is walked as multipart.
 *  - RFC 822 comments are removed (`multipart/mixed(c)`), and the text with comments kept is read too: boundaries
 *    and file names from both readings count. Several boundaries that all occur give several readings.
 *  - Duplicate Content-Type / Content-Disposition headers and duplicate `filename`/`name` parameters: all values.
 *  - A transfer encoding that is not exactly a known name is decoded as the closest known one and kept raw too.
 *  - Header lines running into the body (no blank line): both body starts are read, and the part is an
 *    attachment candidate, never body text.
 *  - `begin 644 name` uuencode blocks inside a text body (Outlook and Thunderbird show them as attachments).
 *  - message/rfc822 in base64 or quoted-printable is decoded and walked; its parts are cut out by cutting the
 *    container.
 * Every such leniency is recorded in `anomalies`. Structure that cannot be judged — a multipart type without a
 * boundary or without any delimiter, nesting or part counts over the limits, absurd header blocks — throws
 * MalformedMimeError; the caller applies its `malformed` action (never "pass as plain text").
 */

export interface MimeLimits {
  readonly maxDepth: number;
  readonly maxParts: number;
  readonly maxHeaderBytes: number;
}

export const DEFAULT_MIME_LIMITS: MimeLimits = { maxDepth: 32, maxParts: 1000, maxHeaderBytes: 256 * 1024 };

export type PartKind = 'multipart' | 'message' | 'leaf';

export interface MimePart {
  /** IMAP-style part number: '' for the message itself, '1', '1.2', ...; `b2.1` = part 1 of a second reading. */
  readonly path: string;
  readonly depth: number;
  readonly kind: PartKind;
  readonly header: HeaderBlock;
  /** The bytes the offsets refer to: the raw message, or the decoded body of an encoded message/rfc822. */
  readonly source: Buffer;
  /** Body bytes [bodyStart, end) of `source`: excludes the line break that belongs to the next delimiter. */
  readonly bodyStart: number;
  readonly end: number;
  /**
   * For children of a multipart: the bytes to cut to remove the part — its delimiter line (with the line break
   * before it) up to the next delimiter's line break. Null for the message root and embedded message roots.
   */
  readonly span: { readonly start: number; readonly end: number } | null;
  /** The raw-message part that contains this one when it was decoded out of an encoded message/rfc822. */
  readonly container: MimePart | null;
  /** Lower-cased `type/subtype` of the first Content-Type (defaulted per RFC 2045 when missing or invalid). */
  readonly contentType: string;
  readonly contentTypeParams: Readonly<Record<string, string>>;
  /** Every declared type (duplicates, defaults for invalid ones), primary first. */
  readonly contentTypes: readonly string[];
  readonly disposition: string;
  readonly dispositions: readonly string[];
  /** Decoded filename: first Content-Disposition filename, else Content-Type name (RFC 2231 / RFC 2047). */
  readonly filename: string | undefined;
  /** Every file name any reader may take (duplicates, both comment readings, a uuencode `begin` name). */
  readonly filenames: readonly string[];
  /** Lower-cased first Content-Transfer-Encoding (default 7bit), as declared. */
  readonly encoding: string;
  /** The decodings readers may apply to the body, most likely first. */
  readonly decodings: readonly Decoding[];
  /** Body start offsets of the readings: the blank-line one first, then one where the headers ran into the body. */
  readonly bodyStarts: readonly number[];
  readonly description: string | undefined;
  readonly children: MimePart[];
  readonly parent: MimePart | null;
  /** Leniency applied to this part (empty for well-formed MIME). */
  readonly anomalies: string[];
}

export interface ParsedMessage {
  readonly raw: Buffer;
  readonly root: MimePart;
  /** Line break the message uses ('\r\n' or '\n'), for bytes a rewriter inserts. */
  readonly eol: string;
  /** Non-fatal oddities that do not change the reading (missing closing delimiter, empty multipart). */
  readonly warnings: string[];
  /** Places where readers may disagree and more than one reading was judged (`part 1: duplicate Content-Type`). */
  readonly anomalies: string[];
}

const LF = 0x0a;
const CR = 0x0d;
const TYPE_RE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;
/** Readings of one multipart at most (distinct boundaries that all occur in the body). */
const MAX_READINGS = 4;

interface WalkState {
  parts: number;
  readonly limits: MimeLimits;
  readonly warnings: string[];
  readonly anomalies: string[];
}

/** Walks the message. Throws MalformedMimeError when the structure cannot be judged. */
export function walkMime(raw: Buffer, limits: MimeLimits = DEFAULT_MIME_LIMITS): ParsedMessage {
  const state: WalkState = { parts: 0, limits, warnings: [], anomalies: [] };
  const root = parseEntity(raw, 0, raw.length, '', 0, null, null, 'text/plain', state, null);
  return { raw, root, eol: lineBreakOf(raw), warnings: state.warnings, anomalies: state.anomalies };
}

const uniq = <T>(xs: Iterable<T>): T[] => [...new Set(xs)];

function parseEntity(
  buf: Buffer,
  start: number,
  end: number,
  path: string,
  depth: number,
  parent: MimePart | null,
  span: MimePart['span'],
  defaultType: string,
  state: WalkState,
  container: MimePart | null,
): MimePart {
  if (depth > state.limits.maxDepth) throw new MalformedMimeError(`MIME nesting deeper than ${state.limits.maxDepth}`);
  if (++state.parts > state.limits.maxParts) {
    throw new MalformedMimeError(`more than ${state.limits.maxParts} MIME parts`);
  }
  const header = readHeaderBlock(buf, start, end, state.limits.maxHeaderBytes);
  const anomalies: string[] = [];
  const ctRaw: string[] = [];
  const cdRaw: string[] = [];
  const cteRaw: string[] = [];
  let description: string | undefined;
  for (const f of header.fields) {
    if (!f.name.startsWith('content-')) continue;
    if (f.name === 'content-type') ctRaw.push(f.value);
    else if (f.name === 'content-disposition') cdRaw.push(f.value);
    else if (f.name === 'content-transfer-encoding') cteRaw.push(f.value);
    else if (f.name === 'content-description') description ??= f.value;
  }
  const ct = ctRaw.map((v) => parseStructured(v));
  const cd = cdRaw.map((v) => parseStructured(v));
  // The same values read by a parser that does not know RFC 822 comments.
  const naive = [...ctRaw, ...cdRaw].filter((v) => v.includes('(')).map((v) => parseStructured(v, true));
  if (ctRaw.length > 1) anomalies.push(`${ctRaw.length} Content-Type headers`);
  if (cdRaw.length > 1) anomalies.push(`${cdRaw.length} Content-Disposition headers`);

  const primary = ct[0];
  const contentType = primary && TYPE_RE.test(primary.value) ? primary.value : defaultType;
  if (primary && primary.value && contentType !== primary.value) {
    anomalies.push(`invalid Content-Type "${primary.value.slice(0, 60)}"`);
  }
  const contentTypes = uniq([contentType, ...ct.map((c) => (TYPE_RE.test(c.value) ? c.value : defaultType))]);
  const dispositions = uniq(cd.map((c) => c.value).filter(Boolean));
  const names: string[] = [];
  for (const s of [...cd, ...ct, ...naive]) names.push(...(s.all['filename'] ?? []), ...(s.all['name'] ?? []));
  const filenames = uniq(names.map((n) => n.trim()).filter(Boolean));
  if (filenames.length > 1) anomalies.push(`${filenames.length} file names`);

  const readings = cteRaw.length ? cteRaw.map((v) => encodingReadings(v)) : [encodingReadings(undefined)];
  const decodings = uniq(readings.flatMap((r) => r.decodings));
  for (const r of readings) if (r.anomaly) anomalies.push(r.anomaly);
  if (cteRaw.length > 1 && decodings.length > 1) anomalies.push(`${cteRaw.length} Content-Transfer-Encoding headers`);

  const bodyStart = Math.min(header.bodyStart, end);
  const bodyStarts = [bodyStart];
  if (header.altBodyStart !== undefined) {
    if (header.altBodyStart !== bodyStart) bodyStarts.push(header.altBodyStart);
    anomalies.push(
      header.altCause === 'whitespace-only line'
        ? 'a header line of only spaces or tabs (some readers end the headers there)'
        : 'header lines run into the body (no blank line before it)',
    );
  }

  // Which readings make this a multipart?
  const typedMultipart = ct.some((c) => c.value.startsWith('multipart/'));
  // And what a reader that just searches for `boundary=` finds (inside comments, after junk).
  // (Only where it can differ: comments, no boundary parameter, or the word twice.)
  const strictBoundaries = ct.flatMap((c) => c.all['boundary'] ?? []);
  const loose: string[] = [];
  for (const v of ctRaw) {
    const lower = v.toLowerCase();
    const at = lower.indexOf('boundary');
    if (at < 0) continue;
    if (strictBoundaries.length && !/["(]/.test(v) && lower.indexOf('boundary', at + 1) < 0) continue;
    // A quoted value is taken whole (junk after the closing quote ignored), a token up to a delimiter.
    for (const m of v.matchAll(/boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^";\s()]+))/gi)) {
      const b = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
      loose.push(b);
    }
  }
  const boundaries = uniq([...strictBoundaries, ...naive.flatMap((c) => c.all['boundary'] ?? []), ...loose]).filter(
    (b) => b.length > 0 && b.length <= 200,
  );
  const strict = new Set(strictBoundaries);
  const found: Section[][] = [];
  if (typedMultipart || boundaries.length) {
    for (const b of boundaries) {
      // From the earliest body start: a delimiter right after headers that ran into the body counts.
      const sections = splitMultipart(buf, Math.min(...bodyStarts), end, b, path, state);
      if (!sections) continue;
      found.push(sections);
      if (!strict.has(b)) anomalies.push(`boundary "${b.slice(0, 70)}" found only by a lenient reading`);
      if (found.length >= MAX_READINGS) break;
    }
  }
  let kind: PartKind = 'leaf';
  if (found.length) {
    kind = 'multipart';
    if (!typedMultipart) anomalies.push(`boundary parameter on ${contentType}: walked as multipart`);
    if (found.length > 1) anomalies.push(`${found.length} boundaries occur in the body: each reading judged`);
  } else if (typedMultipart) {
    if (!boundaries.length) {
      throw new MalformedMimeError(
        `${primary?.value ?? 'multipart'} without a boundary parameter (part ${path || 'root'})`,
      );
    }
    if (!isBlank(buf, bodyStart, end)) {
      throw new MalformedMimeError(`no delimiter for boundary "${boundaries[0]}" (part ${path || 'root'})`);
    }
    kind = 'multipart';
    state.warnings.push(`part ${path || 'root'}: empty multipart`);
  } else if (contentType === 'message/rfc822') {
    kind = 'message';
  }

  const part: MimePart = {
    path,
    depth,
    kind,
    header,
    source: buf,
    bodyStart,
    end,
    span,
    container,
    contentType,
    contentTypeParams: (primary as StructuredValue | undefined)?.params ?? {},
    contentTypes,
    disposition: dispositions[0] ?? '',
    dispositions,
    filename: cd[0]?.params['filename'] ?? primary?.params['name'],
    filenames,
    encoding: (cteRaw[0] ?? '7bit').trim().toLowerCase() || '7bit',
    decodings,
    bodyStarts,
    description: decodeHeaderText(description),
    children: [],
    parent,
    anomalies,
  };
  for (const a of anomalies) state.anomalies.push(`part ${path || 'root'}: ${a}`);

  if (kind === 'multipart') {
    const childDefault = contentType === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
    found.forEach((sections, r) => {
      const prefix = (path ? `${path}.` : '') + (r === 0 ? '' : `b${r + 1}.`);
      sections.forEach((s, i) => {
        part.children.push(
          parseEntity(
            buf,
            s.contentStart,
            s.contentEnd,
            `${prefix}${i + 1}`,
            depth + 1,
            part,
            container ? null : s.span,
            childDefault,
            state,
            container,
          ),
        );
      });
    });
  } else if (kind === 'message') {
    const childPath = path ? `${path}.1` : '1';
    const d = decodings[0] ?? 'identity';
    if (d === 'identity') {
      part.children.push(
        parseEntity(buf, bodyStart, end, childPath, depth + 1, part, null, 'text/plain', state, container),
      );
    } else {
      // An encoded message: walk its decoded bytes; removing anything inside means cutting this part.
      const inner = decodeBody(buf.subarray(bodyStart, end), d);
      part.children.push(
        parseEntity(inner, 0, inner.length, childPath, depth + 1, part, null, 'text/plain', state, container ?? part),
      );
    }
  }
  return part;
}

function isBlank(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) return false;
  }
  return true;
}

interface Section {
  readonly contentStart: number;
  readonly contentEnd: number;
  readonly span: { start: number; end: number };
}

/** Offset of the line break that precedes `pos` (pos is at a line start), or pos itself at the range start. */
function breakBefore(buf: Buffer, pos: number, floor: number): number {
  if (pos <= floor || buf[pos - 1] !== LF) return pos;
  return pos - 2 >= floor && buf[pos - 2] === CR ? pos - 2 : pos - 1;
}

/**
 * The sections between the delimiter lines of a multipart body, or null when the boundary never occurs as a
 * delimiter. A delimiter is `--boundary` at a line start followed only by optional whitespace; `--boundary--`
 * closes (also with garbage after it, as clients read it). A line merely starting with the delimiter
 * (`--boundary-x`) is content. A missing close lets the last part run to the end (warning). Delimiter lines after
 * the close are read as parts too (anomaly): RFC 2046 makes everything after the close an epilogue, but lenient
 * readers (postal-mime, mailparser, mail clients) keep splitting there, so a `--boundary--` slipped in before the
 * parts must not hide them from the policy.
 */
function splitMultipart(
  buf: Buffer,
  start: number,
  end: number,
  boundary: string,
  path: string,
  state: WalkState,
): Section[] | null {
  const delim = Buffer.from(`--${boundary}`, 'utf8');
  const sections: Section[] = [];
  let open: { lineStart: number; contentStart: number } | null = null;
  /** The last close delimiter line: a later delimiter reopens from it (what lenient readers do). */
  let lastClose: { lineStart: number; contentStart: number } | null = null;
  let closed = false;
  let reopened = false;
  let found = false;
  let pos = start;
  while (pos < end) {
    const hit = buf.indexOf(delim, pos);
    if (hit < 0 || hit + delim.length > end) break;
    pos = hit + delim.length;
    if (hit !== start && buf[hit - 1] !== LF) continue; // not at a line start
    let p = hit + delim.length;
    let isClose = false;
    if (buf[p] === 0x2d && buf[p + 1] === 0x2d && p + 1 < end) {
      isClose = true;
      p += 2;
    }
    while (p < end && (buf[p] === 0x20 || buf[p] === 0x09)) p++;
    let lineEnd: number;
    if (p >= end) lineEnd = end;
    else if (buf[p] === LF) lineEnd = p + 1;
    else if (buf[p] === CR && buf[p + 1] === LF) lineEnd = p + 2;
    else if (isClose) {
      const nl = buf.indexOf(LF, p);
      lineEnd = nl < 0 || nl >= end ? end : nl + 1;
    } else continue;
    found = true;
    const lineStart = breakBefore(buf, hit, start);
    if (!open && lastClose) {
      if (!reopened) {
        reopened = true;
        state.anomalies.push(
          `part ${path || 'root'}: delimiter lines after the closing boundary "${boundary.slice(0, 70)}": read as parts too`,
        );
      }
      open = lastClose;
    }
    if (open) {
      sections.push({
        contentStart: open.contentStart,
        contentEnd: Math.max(open.contentStart, lineStart),
        span: { start: open.lineStart, end: lineStart },
      });
    }
    closed = isClose;
    pos = lineEnd;
    if (isClose) {
      lastClose = { lineStart, contentStart: lineEnd };
      open = null;
      continue;
    }
    open = { lineStart, contentStart: lineEnd };
  }
  if (!found) return null;
  if (open) {
    sections.push({ contentStart: open.contentStart, contentEnd: end, span: { start: open.lineStart, end } });
  }
  if (!closed) state.warnings.push(`part ${path || 'root'}: missing closing boundary`);
  return sections;
}

/** Leaf parts in document order (what a policy judges). */
export function leaves(root: MimePart): MimePart[] {
  const out: MimePart[] = [];
  const stack: MimePart[] = [root];
  while (stack.length) {
    const p = stack.pop()!;
    if (p.kind === 'leaf') out.push(p);
    for (let i = p.children.length - 1; i >= 0; i--) stack.push(p.children[i]!);
  }
  return out;
}

/** One way a reader may see a leaf's content. */
export interface BodyReading {
  readonly content: Buffer;
  /** `base64`, `identity@alt` (body from where the headers ran into it), `uuencode-in-body`, ... */
  readonly how: string;
  /** A file name only this reading has (the `begin 644 name` line of a uuencode block). */
  readonly filename?: string;
}

const BEGIN = Buffer.from('\nbegin ', 'latin1');

/**
 * Every plausible content of a leaf, decoded on demand (the walk decodes nothing; call this once per leaf and keep
 * the result). The first is what a standards-following reader shows; duplicates are dropped.
 */
export function bodyReadings(part: MimePart): BodyReading[] {
  const out: BodyReading[] = [];
  const seen = (b: Buffer) => out.some((r) => r.content.length === b.length && r.content.equals(b));
  part.bodyStarts.forEach((bs, i) => {
    const body = part.source.subarray(bs, part.end);
    for (const d of part.decodings) {
      const content = decodeBody(body, d);
      if (!seen(content)) out.push({ content, how: i === 0 ? d : `${d}@alt` });
    }
  });
  // uuencode inside a text body: a `begin 644 invoice.exe` line (Outlook and Thunderbird show an attachment).
  if (out[0] && (part.contentType === 'text/plain' || part.bodyStarts.length > 1)) {
    const text = out[0].content;
    let at = text.subarray(0, 6).equals(BEGIN.subarray(1)) ? 0 : text.indexOf(BEGIN);
    if (at > 0) at++;
    const name = at >= 0 ? uuencodeName(text.subarray(at)) : undefined;
    if (name) out.push({ content: decodeBody(text.subarray(at), 'uuencode'), how: 'uuencode-in-body', filename: name });
  }
  return out;
}

/**
 * True when a reader may present the leaf as an attachment: a file name, an attachment disposition, or headers
 * that ran into the body. (A uuencode block inside a text body is a reading of its own, with its own name.)
 */
export function isAttachmentCandidate(p: MimePart): boolean {
  if (p.filenames.length > 0 || p.dispositions.includes('attachment')) return true;
  // Header fields followed by body lines without a blank line (a headerless text part is just text).
  return p.bodyStarts.length > 1 && p.header.fields.length > 0;
}

/** A body part: no attachment reading, and textual by every declared type. */
export function isBodyText(p: MimePart): boolean {
  if (p.kind !== 'leaf' || isAttachmentCandidate(p)) return false;
  return p.contentTypes.every((t) => t.startsWith('text/') || (t.startsWith('message/') && t !== 'message/rfc822'));
}

export interface ScanTarget {
  /** Part number (see MimePart.path) and how the content was read. */
  readonly part: string;
  readonly how: string;
  readonly filename: string | undefined;
  readonly content: Buffer;
}

/**
 * The contents a virus scanner must see besides the raw message: every reading of every leaf — exactly what the
 * attachment policy judges, so nothing hidden from one stage is seen by another only.
 */
export function scanTargets(parsed: ParsedMessage, opts: { skipPlainBodyText?: boolean } = {}): ScanTarget[] {
  const out: ScanTarget[] = [];
  for (const leaf of leaves(parsed.root)) {
    const readings = bodyReadings(leaf);
    // Body text read one standard way is what the whole-message scan already sees.
    if (opts.skipPlainBodyText && readings.length === 1 && !leaf.anomalies.length && isBodyText(leaf)) continue;
    for (const r of readings) {
      if (r.content.length === 0) continue;
      out.push({ part: leaf.path, how: r.how, filename: r.filename ?? leaf.filenames[0], content: r.content });
    }
  }
  return out;
}

function charsetText(b: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset || 'utf-8').decode(b);
  } catch {
    return b.toString('latin1');
  }
}

/** The decoded text of every textual leaf (every reading), e.g. for URL extraction. */
export function bodyTexts(parsed: ParsedMessage): string[] {
  const out: string[] = [];
  for (const leaf of leaves(parsed.root)) {
    if (!leaf.contentTypes.some((t) => t.startsWith('text/'))) continue;
    for (const r of bodyReadings(leaf)) {
      if (r.filename === undefined) out.push(charsetText(r.content, leaf.contentTypeParams['charset']));
    }
  }
  return out;
}
