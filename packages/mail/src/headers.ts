/**
 * Header blocks read from raw bytes, with byte offsets (so rewriters keep every other byte identical).
 *
 * Where does the header block end? At the first empty line, CRLF or bare LF. A line of only spaces/tabs is
 * obs-FWS (RFC 5322 4.2) and continues the field before it. A line that is neither a field (`Name:`) nor a
 * continuation means the headers "ran into the body": some readers start the body there, others skip the line and
 * keep reading headers up to the blank line. Both readings are kept (`altBodyStart`) so a judge can look at both.
 */

export class MalformedMimeError extends Error {
  override readonly name = 'MalformedMimeError';
}

export interface HeaderField {
  /** Lower-cased field name. */
  readonly name: string;
  /** Unfolded value, leading/trailing whitespace trimmed. */
  readonly value: string;
}

export interface HeaderBlock {
  readonly fields: readonly HeaderField[];
  /** Offset where the header block starts. */
  readonly start: number;
  /** Offset just past the last header line (the blank line starts here; == start when there are no headers). */
  readonly end: number;
  /** Offset of the first body byte (after the blank line). */
  readonly bodyStart: number;
  /**
   * Offset of the first line that is neither a field nor a continuation, when one comes before the blank line:
   * the body start of a reader that stops at such a line. Undefined for a well-formed block.
   */
  readonly altBodyStart?: number;
  /** Why there is a second reading: a line that is no field, or a line of only spaces/tabs (taken for the blank line). */
  readonly altCause?: AltCause;
}

export type AltCause = 'non-field line' | 'whitespace-only line';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

/** The line [pos, lineEnd) holds spaces and tabs only (and at least one). */
function isWhitespaceOnly(buf: Buffer, pos: number, lineEnd: number): boolean {
  if (lineEnd <= pos) return false;
  for (let i = pos; i < lineEnd; i++) if (buf[i] !== SP && buf[i] !== HT) return false;
  return true;
}

/** `Name:` (printable ASCII without colon, optional whitespace before the colon, RFC 5322 obs-optional). */
function isFieldLine(buf: Buffer, pos: number, lineEnd: number): boolean {
  let i = pos;
  for (; i < lineEnd; i++) {
    const c = buf[i]!;
    if (c === 0x3a) break;
    if (c < 0x21 || c > 0x7e) break;
  }
  if (i === pos) return false;
  while (i < lineEnd && (buf[i] === SP || buf[i] === HT)) i++;
  return i < lineEnd && buf[i] === 0x3a;
}

export interface HeaderEnd {
  /** Offset just past the last header line. */
  readonly end: number;
  /** First body byte (after the blank line), or the range end when there is no blank line. */
  readonly bodyStart: number;
  /** See HeaderBlock.altBodyStart. */
  readonly altBodyStart?: number;
  /** See HeaderBlock.altCause (set with altBodyStart). */
  readonly altCause?: AltCause;
  /** True when a blank line was found (false: the whole range is header). */
  readonly blankLine: boolean;
}

/**
 * The end of the header block at `start` within [start, end): the one implementation every stage uses. A range
 * starting with a blank line has no headers; a range whose first line is not a field and that has no blank line
 * has no headers at all (the whole range is body, as mail clients read a headerless part). `maxBytes` bounds the search: a longer block throws
 * MalformedMimeError.
 */
export function headerEnd(buf: Buffer, start = 0, end = buf.length, maxBytes = Infinity): HeaderEnd {
  if (start >= end) return { end: start, bodyStart: end, blankLine: false };
  if (buf[start] === LF) return { end: start, bodyStart: start + 1, blankLine: true };
  if (buf[start] === CR && buf[start + 1] === LF) return { end: start, bodyStart: start + 2, blankLine: true };
  let pos = start;
  let alt: number | undefined;
  let cause: AltCause | undefined; // set with alt
  let first = true;
  while (pos < end) {
    if (pos - start > maxBytes)
      throw new MalformedMimeError(`header block larger than ${maxBytes} bytes at offset ${start}`);
    let nl = buf.indexOf(LF, pos);
    if (nl < 0 || nl >= end) nl = end;
    const lineEnd = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
    if (lineEnd === pos && nl < end) {
      // The empty line.
      return alt === undefined
        ? { end: pos, bodyStart: nl + 1, blankLine: true }
        : { end: pos, bodyStart: nl + 1, altBodyStart: alt, altCause: cause, blankLine: true };
    }
    const c = buf[pos];
    const continuation = !first && (c === SP || c === HT);
    // A non-field line (also a first line starting with whitespace): parsers skip it and keep reading headers
    // to the blank line; a strict reader starts the body there. Both readings are kept.
    if (!continuation && !isFieldLine(buf, pos, lineEnd)) {
      if (alt === undefined) [alt, cause] = [pos, 'non-field line'];
    }
    // A line of only spaces/tabs continues the field for RFC 5322 (obs-FWS), but some readers (postal-mime) take it
    // for the empty line and start the body after it: a MIME delimiter right after it (a boundary with a colon in
    // it, `--a:b`, also looks like a header field) would otherwise hide the parts behind it in the preamble.
    else if (continuation && isWhitespaceOnly(buf, pos, lineEnd) && nl < end) {
      if (alt === undefined) [alt, cause] = [nl + 1, 'whitespace-only line'];
    }
    first = false;
    pos = nl + 1;
  }
  if (end - start > maxBytes)
    throw new MalformedMimeError(`header block larger than ${maxBytes} bytes at offset ${start}`);
  // No blank line: everything is header, unless a reader would have stopped at a non-field line. A range whose
  // first line is no field and that has no blank line has no headers at all (a headerless part, as clients read it).
  if (alt === start) return { end: start, bodyStart: start, blankLine: false };
  return alt === undefined
    ? { end, bodyStart: end, blankLine: false }
    : { end, bodyStart: alt, altBodyStart: alt, altCause: cause, blankLine: false };
}

/** Reads and parses the header block at `start` (see headerEnd). */
export function readHeaderBlock(buf: Buffer, start: number, end: number, maxBytes = Infinity): HeaderBlock {
  const h = headerEnd(buf, start, end, maxBytes);
  const fields = h.end > start ? parseFields(buf.toString('utf8', start, h.end)) : [];
  const block = { fields, start, end: h.end, bodyStart: h.bodyStart };
  return h.altBodyStart === undefined ? block : { ...block, altBodyStart: h.altBodyStart, altCause: h.altCause };
}

/** Fields of a header block's text: unfolded, names lower-cased, in order, duplicates kept. */
export function parseFields(text: string): HeaderField[] {
  const out: HeaderField[] = [];
  const lines = text.split(/\r?\n/);
  let cur: string | null = null;
  const flush = () => {
    if (cur === null) return;
    const colon = cur.indexOf(':');
    if (colon > 0) out.push({ name: cur.slice(0, colon).trim().toLowerCase(), value: cur.slice(colon + 1).trim() });
  };
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && cur !== null) {
      cur += line;
    } else {
      flush();
      cur = line;
    }
  }
  flush();
  return out;
}

/** The first value of a field (lower-case name), or undefined. */
export function field(block: { readonly fields: readonly HeaderField[] }, name: string): string | undefined {
  for (const f of block.fields) if (f.name === name) return f.value;
  return undefined;
}

/** Every value of a field, in order: duplicates are where parsers disagree, so callers judge all of them. */
export function fieldValues(block: { readonly fields: readonly HeaderField[] }, name: string): string[] {
  const out: string[] = [];
  for (const f of block.fields) if (f.name === name) out.push(f.value);
  return out;
}

/** The header fields of a whole message (`raw` from its first byte). */
export function messageHeaders(raw: Buffer, maxBytes = Infinity): HeaderBlock {
  return readHeaderBlock(raw, 0, raw.length, maxBytes);
}

/** The line break a message uses ('\r\n' unless its first line ends in a bare LF). */
export function lineBreakOf(raw: Buffer): '\r\n' | '\n' {
  const nl = raw.indexOf(LF);
  return nl > 0 && raw[nl - 1] !== CR ? '\n' : '\r\n';
}
