/**
 * Header edits on the raw message without re-encoding it: prepend fields, remove fields a sender pre-set, prefix
 * the Subject. Everything else stays byte-identical (DKIM signatures over the body and other headers stay valid).
 */

/** Line ending the message uses (SMTP gives CRLF; a bare-LF message keeps bare LF). */
export function eolOf(raw: Buffer): string {
  const i = raw.indexOf(0x0a);
  return i > 0 && raw[i - 1] === 0x0d ? '\r\n' : i === -1 ? '\r\n' : '\n';
}

/** Header values are single-line, printable and short: nothing that could fold or inject a line. */
export function headerSafe(s: string, max = 900): string {
  const clean = s.replace(/[\r\n\0]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? clean.slice(0, max - 3) + '...' : clean;
}

/** End of the header section (index just after the line break before the blank line), or the length. */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const candidates = [crlf === -1 ? -1 : crlf + 2, lf === -1 ? -1 : lf + 1].filter((i) => i >= 0);
  return candidates.length ? Math.min(...candidates) : raw.length;
}

export function prependHeaders(raw: Buffer, fields: readonly (readonly [string, string])[]): Buffer {
  if (fields.length === 0) return raw;
  const eol = eolOf(raw);
  const head = Buffer.from(fields.map(([n, v]) => `${n}: ${headerSafe(v)}${eol}`).join(''), 'latin1');
  return Buffer.concat([head, raw], head.length + raw.length);
}

/**
 * Remove every field named in `names` (with folded continuation lines) from the top-level header section: a
 * sender must not be able to pre-set "X-Spam-Flag: NO", and a re-checked release must not carry the old verdict.
 * Returns the same Buffer when there is nothing to remove.
 */
export function stripHeaders(raw: Buffer, names: readonly string[]): Buffer {
  const end = headerEnd(raw);
  const head = raw.subarray(0, end).toString('latin1');
  const lowerHead = head.toLowerCase();
  const lower = names.map((n) => n.toLowerCase() + ':').filter((n) => lowerHead.includes(n));
  if (lower.length === 0) return raw;
  const kept: string[] = [];
  let dropping = false;
  for (const line of head.split(/(?<=\n)/)) {
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (continuation && dropping) continue;
    const l = line.toLowerCase();
    dropping = lower.some((n) => l.startsWith(n));
    if (!dropping) kept.push(line);
  }
  const newHead = Buffer.from(kept.join(''), 'latin1');
  if (newHead.length === end) return raw;
  return Buffer.concat([newHead, raw.subarray(end)]);
}

/**
 * Prefix the first Subject field's value with `prefix` (once: a subject that already starts with it is left
 * alone). A message without a Subject gets one. The rest of the field (folding, encoded words) is kept as is.
 */
export function prefixSubject(raw: Buffer, prefix: string): Buffer {
  if (!prefix) return raw;
  const end = headerEnd(raw);
  const head = raw.subarray(0, end).toString('latin1');
  const m = /(^|\n)subject:[ \t]*/i.exec(head);
  const safe = headerSafe(prefix, 64);
  if (!m) return prependHeaders(raw, [['Subject', safe.trimEnd()]]);
  const at = m.index + m[0].length;
  if (head.slice(at).startsWith(safe)) return raw;
  const insert = Buffer.from(safe, 'latin1');
  return Buffer.concat([raw.subarray(0, at), insert, raw.subarray(at)]);
}
