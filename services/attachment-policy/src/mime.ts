import {
  decodeHeaderText,
  field,
  MalformedMimeError,
  parseStructured,
  readHeaderBlock,
  type HeaderBlock,
} from './headers.js';

/**
 * A structural MIME splitter over the raw bytes. It only finds where things are — header blocks, boundaries,
 * bodies — with byte offsets, so that stripping a part can cut exactly its bytes and leave every other byte
 * of the message identical. Content decoding is in decode.ts; header parameter decoding in headers.ts.
 *
 * Leniency follows what mail clients do (so the gateway judges what the recipient will see): a part without
 * headers, a missing closing delimiter (the last part runs to the end) are accepted. Unrecoverable structure
 * — a multipart without a boundary or without any delimiter, nesting or part counts over the limits, absurd
 * header blocks — throws MalformedMimeError.
 */

export interface MimeLimits {
  readonly maxDepth: number;
  readonly maxParts: number;
  readonly maxHeaderBytes: number;
}

export type PartKind = 'multipart' | 'message' | 'leaf';

export interface MimePart {
  /** IMAP-style part number: '' for the message itself, '1', '1.2', ... */
  readonly path: string;
  readonly depth: number;
  readonly kind: PartKind;
  readonly header: HeaderBlock;
  /** Body bytes [bodyStart, end): excludes the line break that belongs to the next delimiter. */
  readonly bodyStart: number;
  readonly end: number;
  /**
   * For children of a multipart: the bytes to cut to remove the part — its delimiter line (with the line break
   * before it) up to the next delimiter's line break. Null for the message root and embedded message roots.
   */
  readonly span: { readonly start: number; readonly end: number } | null;
  /** Lower-cased `type/subtype` (defaulted per RFC 2045 when missing or invalid). */
  readonly contentType: string;
  readonly contentTypeParams: Readonly<Record<string, string>>;
  readonly disposition: string;
  /** Decoded filename from Content-Disposition filename or Content-Type name (RFC 2231 / RFC 2047). */
  readonly filename: string | undefined;
  /** Lower-cased Content-Transfer-Encoding (default 7bit). */
  readonly encoding: string;
  readonly description: string | undefined;
  readonly children: MimePart[];
  readonly parent: MimePart | null;
}

const LF = 0x0a;
const CR = 0x0d;

interface WalkState {
  parts: number;
  readonly limits: MimeLimits;
  readonly warnings: string[];
}

export interface ParsedMessage {
  readonly root: MimePart;
  /** Line break the message uses ('\r\n' or '\n'), for bytes the rewriter inserts. */
  readonly eol: string;
  /** Non-fatal oddities (missing closing delimiter), recorded in the verdict details. */
  readonly warnings: string[];
}

export function parseMessage(raw: Buffer, limits: MimeLimits): ParsedMessage {
  const state: WalkState = { parts: 0, limits, warnings: [] };
  const root = parseEntity(raw, 0, raw.length, '', 0, null, null, 'text/plain', state);
  const nl = raw.indexOf(LF);
  const eol = nl > 0 && raw[nl - 1] === CR ? '\r\n' : '\n';
  return { root, eol, warnings: state.warnings };
}

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
): MimePart {
  if (depth > state.limits.maxDepth) throw new MalformedMimeError(`MIME nesting deeper than ${state.limits.maxDepth}`);
  if (++state.parts > state.limits.maxParts) {
    throw new MalformedMimeError(`more than ${state.limits.maxParts} MIME parts`);
  }
  const header = readHeaderBlock(buf, start, end, state.limits.maxHeaderBytes);
  const ct = parseStructured(field(header, 'content-type'));
  const cd = parseStructured(field(header, 'content-disposition'));
  // RFC 2045 5.2: a missing or syntactically invalid Content-Type means the default.
  const contentType = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(ct.value) ? ct.value : defaultType;
  const encoding = (field(header, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase() || '7bit';
  const filename = cd.params['filename'] ?? ct.params['name'];
  const bodyStart = Math.min(header.bodyStart, end);
  const kind: PartKind = contentType.startsWith('multipart/')
    ? 'multipart'
    : contentType === 'message/rfc822' && !['base64', 'quoted-printable'].includes(encoding)
      ? 'message'
      : 'leaf';
  const part: MimePart = {
    path,
    depth,
    kind,
    header,
    bodyStart,
    end,
    span,
    contentType,
    contentTypeParams: ct.params,
    disposition: cd.value,
    filename,
    encoding,
    description: decodeHeaderText(field(header, 'content-description')),
    children: [],
    parent,
  };
  if (kind === 'multipart') {
    const boundary = ct.params['boundary'];
    if (!boundary) throw new MalformedMimeError(`${contentType} without a boundary parameter (part ${path || 'root'})`);
    if (boundary.length > 200) throw new MalformedMimeError(`boundary longer than 200 characters`);
    const childDefault = contentType === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
    const sections = splitMultipart(buf, bodyStart, end, boundary, path, state);
    sections.forEach((s, i) => {
      const childPath = path ? `${path}.${i + 1}` : String(i + 1);
      part.children.push(
        parseEntity(buf, s.contentStart, s.contentEnd, childPath, depth + 1, part, s.span, childDefault, state),
      );
    });
  } else if (kind === 'message') {
    const childPath = path ? `${path}.1` : '1';
    part.children.push(parseEntity(buf, bodyStart, end, childPath, depth + 1, part, null, 'text/plain', state));
  }
  return part;
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
 * Finds the delimiter lines of a multipart body. A delimiter is `--boundary` at a line start followed only by
 * optional whitespace; `--boundary--` closes. A line merely starting with the delimiter (`--boundary-x`) is content.
 */
function splitMultipart(buf: Buffer, start: number, end: number, boundary: string, path: string, state: WalkState) {
  const delim = Buffer.from(`--${boundary}`, 'utf8');
  const sections: Section[] = [];
  let open: { lineStart: number; contentStart: number } | null = null;
  let closed = false;
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
      // `--boundary--garbage`: treat as the close (what clients do), skip the rest of the line.
      const nl = buf.indexOf(LF, p);
      lineEnd = nl < 0 || nl >= end ? end : nl + 1;
    } else continue;
    found = true;
    const lineStart = breakBefore(buf, hit, start);
    if (open) {
      sections.push({
        contentStart: open.contentStart,
        contentEnd: Math.max(open.contentStart, lineStart),
        span: { start: open.lineStart, end: lineStart },
      });
    }
    if (isClose) {
      closed = true;
      open = null;
      break;
    }
    open = { lineStart, contentStart: lineEnd };
    pos = lineEnd;
  }
  if (!found) {
    // An empty multipart (only whitespace) has no parts; anything else without a delimiter is broken.
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) {
        throw new MalformedMimeError(`no delimiter for boundary "${boundary}" (part ${path || 'root'})`);
      }
    }
    state.warnings.push(`part ${path || 'root'}: empty multipart`);
    return sections;
  }
  if (open) {
    sections.push({ contentStart: open.contentStart, contentEnd: end, span: { start: open.lineStart, end } });
  }
  if (!closed) state.warnings.push(`part ${path || 'root'}: missing closing boundary`);
  return sections;
}

/** Leaf parts in document order (what the policy judges). */
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
