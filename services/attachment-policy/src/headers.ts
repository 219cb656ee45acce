import { decodeWords } from 'postal-mime';

/**
 * Header blocks of a message or MIME part, read from the raw bytes with their byte offsets (so the rewriter can
 * keep everything else byte-identical). Field values are unfolded; parameters follow RFC 2045 / RFC 2231, and
 * filenames additionally get RFC 2047 encoded-word decoding (non-standard, but what every mail client sends).
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
}

const LF = 0x0a;
const CR = 0x0d;
const FIELD_LINE = /^[!-9;-~]+[ \t]*:/;

/** The first line of [start, end) looks like a header field (`Name:`), not body text. */
function startsWithField(buf: Buffer, start: number, end: number): boolean {
  const lineEnd = Math.min(end, start + 1000);
  const nl = buf.indexOf(LF, start);
  const head = buf.toString('latin1', start, nl >= 0 && nl < lineEnd ? nl : lineEnd);
  return FIELD_LINE.test(head);
}

/**
 * Reads the header block at `start` (bounded by `end`). A part that starts with a blank line has no headers;
 * a part whose first line is not a field has no headers and all body (lenient, as mail clients are).
 */
export function readHeaderBlock(buf: Buffer, start: number, end: number, maxBytes: number): HeaderBlock {
  if (start >= end) return { fields: [], start, end: start, bodyStart: end };
  if (buf[start] === LF) return { fields: [], start, end: start, bodyStart: start + 1 };
  if (buf[start] === CR && buf[start + 1] === LF) return { fields: [], start, end: start, bodyStart: start + 2 };
  if (!startsWithField(buf, start, end)) return { fields: [], start, end: start, bodyStart: start };
  // The blank line: the first LF followed by LF or CRLF. Only look as far as the size limit allows.
  const limit = Math.min(end, start + maxBytes + 2);
  let pos = start;
  let headerEnd = -1;
  let bodyStart = end;
  for (;;) {
    const nl = buf.indexOf(LF, pos);
    if (nl < 0 || nl >= limit) break;
    const next = buf[nl + 1];
    if (nl + 1 >= end) {
      headerEnd = end;
      bodyStart = end;
      break;
    }
    if (next === LF) {
      headerEnd = nl + 1;
      bodyStart = nl + 2;
      break;
    }
    if (next === CR && buf[nl + 2] === LF) {
      headerEnd = nl + 1;
      bodyStart = nl + 3;
      break;
    }
    pos = nl + 1;
  }
  if (headerEnd < 0) {
    if (limit < end) throw new MalformedMimeError(`header block larger than ${maxBytes} bytes at offset ${start}`);
    headerEnd = end; // headers only, no body
    bodyStart = end;
  }
  if (headerEnd - start > maxBytes) {
    throw new MalformedMimeError(`header block larger than ${maxBytes} bytes at offset ${start}`);
  }
  return { fields: parseFields(buf.toString('utf8', start, headerEnd)), start, end: headerEnd, bodyStart };
}

function parseFields(text: string): HeaderField[] {
  const out: HeaderField[] = [];
  // Unfold: a line starting with whitespace continues the previous field.
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

export function field(block: HeaderBlock, name: string): string | undefined {
  for (const f of block.fields) if (f.name === name) return f.value;
  return undefined;
}

export interface StructuredValue {
  /** Lower-cased main value (`multipart/mixed`, `attachment`). */
  readonly value: string;
  /** Lower-cased parameter names → decoded values (RFC 2231 continuations and charsets applied). */
  readonly params: Readonly<Record<string, string>>;
}

/** Splits `value; a=b; c="d;e"` respecting quoted strings (with backslash escapes). */
function splitParams(input: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < input.length) {
        cur += input[++i];
        continue;
      }
      if (c === '"') quoted = false;
      else cur += c;
      continue;
    }
    if (c === '"') {
      quoted = true;
      continue;
    }
    if (c === ';') {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

function decodeCharset(bytes: Uint8Array, charset: string): string {
  try {
    return new TextDecoder(charset || 'utf-8').decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes); // unknown charset label
  }
}

function percentDecode(s: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const b of Buffer.from(s[i]!, 'utf8')) bytes.push(b);
  }
  return Uint8Array.from(bytes);
}

/** Parses a Content-Type / Content-Disposition value with RFC 2231 parameters. */
export function parseStructured(raw: string | undefined): StructuredValue {
  if (!raw) return { value: '', params: {} };
  const [head = '', ...rest] = splitParams(raw);
  const plain: Record<string, string> = {};
  // name → { index → { text, encoded } } for RFC 2231 continuations (name*0, name*1*, ...) and name*.
  const pieces: Record<string, { idx: number; text: string; encoded: boolean }[]> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const key = p.slice(0, eq).trim().toLowerCase();
    const val = p.slice(eq + 1).trim();
    const m = /^([^*]+)\*(?:(\d{1,3})(\*)?)?$/.exec(key);
    if (m) {
      const name = m[1]!;
      const idx = m[2] === undefined ? 0 : Number(m[2]);
      const encoded = m[2] === undefined ? true : m[3] === '*';
      (pieces[name] ??= []).push({ idx, text: val, encoded });
    } else if (!(key in plain)) {
      plain[key] = val;
    }
  }
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(plain)) params[k] = k === 'boundary' ? v : decodeWordsSafe(v);
  for (const [name, parts] of Object.entries(pieces)) {
    parts.sort((a, b) => a.idx - b.idx);
    let charset = 'utf-8';
    const bytes: Uint8Array[] = [];
    parts.forEach((p, i) => {
      let text = p.text;
      if (p.encoded && i === 0) {
        // charset'language'value
        const q1 = text.indexOf("'");
        const q2 = q1 >= 0 ? text.indexOf("'", q1 + 1) : -1;
        if (q2 >= 0) {
          charset = text.slice(0, q1) || 'utf-8';
          text = text.slice(q2 + 1);
        }
      }
      bytes.push(p.encoded ? percentDecode(text) : Buffer.from(text, 'utf8'));
    });
    params[name] = decodeCharset(Buffer.concat(bytes), charset);
  }
  return { value: head.trim().toLowerCase(), params };
}

function decodeWordsSafe(s: string): string {
  if (!s.includes('=?')) return s;
  try {
    return decodeWords(s);
  } catch {
    return s;
  }
}

/** Decodes an unstructured header value (encoded words), e.g. Content-Description. */
export function decodeHeaderText(s: string | undefined): string | undefined {
  return s === undefined ? undefined : decodeWordsSafe(s);
}
