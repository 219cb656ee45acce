import { lineBreakOf, parseFields } from './headers.js';

/**
 * Header edits that keep every other byte of the message as it was (no re-encoding, no refolding: DKIM signatures
 * over the untouched headers and the body stay valid): prepend a field, remove fields by name, copy the block.
 */

const LF = 0x0a;
const CR = 0x0d;

/**
 * End of the top-level header block as the most lenient reader sees it: just past the line break before the first
 * empty line (CRLF or bare LF), or the message length when there is none. Removals use this reading, so a forged
 * field cannot hide behind a line a strict reader would call "body" (a non-field line before the blank line).
 */
export function widestHeaderEnd(raw: Buffer): number {
  if (raw[0] === LF) return 0;
  if (raw[0] === CR && raw[1] === LF) return 0;
  let pos = 0;
  for (;;) {
    const nl = raw.indexOf(LF, pos);
    if (nl < 0) return raw.length;
    const next = raw[nl + 1];
    if (next === LF || (next === CR && raw[nl + 2] === LF)) return nl + 1;
    pos = nl + 1;
  }
}

/** The header block bytes (up to and including the line break before the empty line). */
export function headerBlockBytes(raw: Buffer): Buffer {
  return raw.subarray(0, widestHeaderEnd(raw));
}

/** Values of every top-level field named `name` (case-insensitive), unfolded, top to bottom. */
export function headerValues(raw: Buffer, name: string, maxHeaderBytes = 256 * 1024): string[] {
  const end = Math.min(widestHeaderEnd(raw), maxHeaderBytes);
  const want = name.toLowerCase();
  const out: string[] = [];
  for (const f of parseFields(raw.toString('latin1', 0, end))) {
    if (f.name === want) out.push(f.value.replace(/[ \t]+/g, ' '));
  }
  return out;
}

/** Header values are single-line, printable and short: anything that could fold or inject a line is replaced. */
export function headerSafe(s: string, max = 900): string {
  const clean = s.replace(/[\r\n\0]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? clean.slice(0, max - 3) + '...' : clean;
}

/** The raw message with `Name: value` (made header-safe) prepended, in the message's own line ending. */
export function prependHeader(raw: Buffer, name: string, value: string): Buffer {
  const line = Buffer.from(`${name}: ${headerSafe(value)}${lineBreakOf(raw)}`, 'latin1');
  return Buffer.concat([line, raw], line.length + raw.length);
}

/**
 * Removes every top-level field whose lower-cased name `match`es, with its folded continuation lines. Returns the
 * same Buffer (no copy) when nothing matched. The block is the widest reading (widestHeaderEnd).
 */
export function removeHeaders(raw: Buffer, match: (lowerName: string) => boolean): Buffer {
  const end = widestHeaderEnd(raw);
  const head = raw.toString('latin1', 0, end);
  const lines = head.split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  let removed = false;
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!dropping) kept.push(line);
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    dropping = name !== '' && !/[\s]/.test(name) && match(name);
    if (dropping) removed = true;
    else kept.push(line);
  }
  if (!removed) return raw;
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), raw.subarray(end)]);
}
