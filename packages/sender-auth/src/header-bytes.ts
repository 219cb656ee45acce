/**
 * Minimal byte-level access to the header section of an RFC 5322 message: where each field starts and ends,
 * its name, and its unfolded value. Private to this package: when packages/mail lands these three helpers
 * (`headerFields`, `unfold`, `fromDomains`) are swapped for its parser; nothing else here reads raw headers.
 *
 * Works on latin1 strings of the raw bytes (one char per byte) so offsets are byte offsets and nothing is
 * re-encoded. Accepts CRLF and bare LF line ends (a message can arrive with either before normalisation).
 */

export interface HeaderField {
  /** Field name as written (case kept), without trailing whitespace before the colon. */
  readonly name: string;
  /** Lower-cased name, for comparisons. */
  readonly key: string;
  /** Byte offset of the first byte of the field. */
  readonly start: number;
  /** Byte offset just past the field's final line end. */
  readonly end: number;
  /** Everything after the colon up to (excluding) the final line end, folding kept. latin1. */
  readonly rawValue: string;
}

export interface HeaderSection {
  readonly fields: readonly HeaderField[];
  /** Offset where the body starts (after the empty line), or raw.length when there is no body separator. */
  readonly bodyStart: number;
  /** Offset of the empty line separating header and body (== headerEnd of the last field). */
  readonly headerEnd: number;
}

/** Splits the header section into fields. Lines without a colon that are not continuations end the header. */
export function headerFields(raw: Buffer): HeaderSection {
  // Decode only the header section: a 50 MiB message must not become a 50 MiB string for a header lookup.
  let end = 0;
  for (;;) {
    const nl = raw.indexOf(0x0a, end);
    if (nl === -1) {
      end = raw.length;
      break;
    }
    const len = nl - end;
    end = nl + 1;
    if (len === 0 || (len === 1 && raw[nl - 1] === 0x0d)) break;
  }
  const s = raw.subarray(0, end).toString('latin1');
  const fields: HeaderField[] = [];
  let pos = 0;
  let cur: { name: string; start: number; colon: number } | null = null;
  const close = (end: number, valueEnd: number) => {
    if (!cur) return;
    fields.push({
      name: cur.name,
      key: cur.name.toLowerCase(),
      start: cur.start,
      end,
      rawValue: s.slice(cur.colon + 1, valueEnd),
    });
    cur = null;
  };
  while (pos < s.length) {
    const nl = s.indexOf('\n', pos);
    const lineEnd = nl === -1 ? s.length : nl + 1;
    const contentEnd = nl === -1 ? s.length : nl > pos && s[nl - 1] === '\r' ? nl - 1 : nl;
    const line = s.slice(pos, contentEnd);
    if (line === '') {
      // The empty line: end of the header section.
      if (cur) close(pos, valueEndBefore(s, pos));
      return { fields, headerEnd: pos, bodyStart: lineEnd };
    }
    if ((line[0] === ' ' || line[0] === '\t') && cur) {
      pos = lineEnd;
      continue; // continuation of the current field
    }
    if (cur) close(pos, valueEndBefore(s, pos));
    const colon = line.indexOf(':');
    if (colon <= 0) {
      // Not a header line (RFC 5322 would call the message malformed): treat it as the start of the body.
      return { fields, headerEnd: pos, bodyStart: pos };
    }
    cur = { name: line.slice(0, colon).replace(/[ \t]+$/, ''), start: pos, colon: pos + colon };
    pos = lineEnd;
  }
  if (cur) close(s.length, valueEndBefore(s, s.length));
  return { fields, headerEnd: s.length, bodyStart: s.length };
}

/** The offset of the line end that precedes `pos` (CRLF or LF), i.e. where the previous field's value ends. */
function valueEndBefore(s: string, pos: number): number {
  let e = pos;
  if (e > 0 && s[e - 1] === '\n') e--;
  if (e > 0 && s[e - 1] === '\r') e--;
  return e;
}

/** RFC 5322 unfolding: CRLF (or LF) followed by WSP becomes just the WSP. */
export function unfold(value: string): string {
  return value.replace(/\r?\n(?=[ \t])/g, '');
}

/** Removes RFC 5322 comments (nested parentheses, quoted-pairs), keeping quoted strings intact. */
export function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  let inQuote = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && (inQuote || depth > 0)) {
      if (depth === 0) out += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (depth === 0 && c === '"') inQuote = !inQuote;
    if (!inQuote) {
      if (c === '(') {
        depth++;
        continue;
      }
      if (c === ')' && depth > 0) {
        depth--;
        if (depth === 0) out += ' ';
        continue;
      }
    }
    if (depth === 0) out += c;
  }
  return out;
}

/**
 * Domains of the addresses in the (last) From field, lower-cased, in order. Good enough to choose a signing key;
 * DMARC's own From parsing is mailauth's. Group syntax and display names are tolerated; '@' in quoted display
 * names is skipped because addresses are taken from <…> when present.
 */
export function fromDomains(section: HeaderSection): string[] {
  const from = [...section.fields].reverse().find((f) => f.key === 'from');
  if (!from) return [];
  const value = stripComments(unfold(from.rawValue));
  const angle = [...value.matchAll(/<([^<>]*)>/g)].map((m) => m[1]!);
  const addrs = angle.length > 0 ? angle : value.split(',').map((a) => a.replace(/^[^:]*:/, '').replace(/;$/, ''));
  const out: string[] = [];
  for (const a of addrs) {
    const at = a.lastIndexOf('@');
    if (at === -1) continue;
    const d = a
      .slice(at + 1)
      .trim()
      .replace(/[>;\s]+$/, '')
      .replace(/\.$/, '')
      .toLowerCase();
    if (d) out.push(d);
  }
  return out;
}
