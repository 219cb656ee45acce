import { decodeWords } from 'postal-mime';

/**
 * Structured header values (Content-Type, Content-Disposition, Content-Transfer-Encoding): RFC 822 comments are
 * removed (nested, with quoted-pairs), quoted strings are kept whole, RFC 2231 continuations and charsets are
 * joined, RFC 2047 encoded words in parameter values are decoded (non-standard, but what every client sends).
 * Duplicate parameters are all kept (`all`), because readers disagree on which one wins.
 */

export interface StructuredValue {
  /** Lower-cased main value with comments and whitespace removed (`multipart/mixed`, `attachment`). */
  readonly value: string;
  /** Lower-cased parameter names → decoded value (the first occurrence, what RFC-minded readers use). */
  readonly params: Readonly<Record<string, string>>;
  /** Every decoded value of every parameter, in order (duplicates and the RFC 2231 form side by side). */
  readonly all: Readonly<Record<string, readonly string[]>>;
}

const EMPTY: StructuredValue = { value: '', params: {}, all: {} };

/**
 * Removes RFC 822 comments outside quoted strings: `multipart/mixed(c); boundary=x` → `multipart/mixed; boundary=x`.
 * Quoted strings and their escapes are left as they are. An unclosed comment runs to the end (as clients read it).
 */
export function stripComments(input: string): string {
  if (!input.includes('(')) return input;
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
      if (depth === 0) out += ' ';
      continue;
    }
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < input.length) out += input[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    if (c === '(') {
      depth = 1;
      continue;
    }
    out += c;
  }
  return out;
}

/** Splits `value; a=b; c="d;e"` at semicolons outside quoted strings, unquoting (with backslash escapes). */
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

/** Decodes RFC 2047 encoded words; the input unchanged when there are none or they are broken. */
export function decodeWordsSafe(s: string): string {
  if (!s.includes('=?')) return s;
  try {
    return decodeWords(s);
  } catch {
    return s;
  }
}

/** Decodes an unstructured header value (encoded words), e.g. Content-Description or Subject. */
export function decodeHeaderText(s: string | undefined): string | undefined {
  return s === undefined ? undefined : decodeWordsSafe(s);
}

/**
 * Parses a structured value. `keepComments` parses the text as it is (what a reader that does not know RFC 822
 * comments sees); the MIME walk looks at both readings.
 */
export function parseStructured(raw: string | undefined, keepComments = false): StructuredValue {
  if (!raw) return EMPTY;
  const [head = '', ...rest] = splitParams(keepComments ? raw : stripComments(raw));
  const all: Record<string, string[]> = {};
  const add = (k: string, v: string) => (all[k] ??= []).push(v);
  // name → pieces for RFC 2231 continuations (name*0, name*1*, ...) and name*.
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
    } else {
      add(key, key === 'boundary' ? val : decodeWordsSafe(val));
    }
  }
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
    // RFC 2231 wins over the plain form for readers that know it: put it first.
    (all[name] ??= []).unshift(decodeCharset(Buffer.concat(bytes), charset));
  }
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) params[k] = v[0]!;
  // `multipart / mixed` is `multipart/mixed` (whitespace between tokens is allowed in structured fields).
  const value = head
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase()
    .replace(/\s*\/\s*/, '/');
  return { value, params, all };
}
