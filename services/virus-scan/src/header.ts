/**
 * The scan header: one line prepended to the message, e.g.
 *   X-Mailgate-Virus-Scanned: clean (mailgate mx1.example.com; ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025)
 * Prepending keeps every original byte as it was (no re-encoding, DKIM signatures stay valid).
 */

/** Line ending the message uses (SMTP gives CRLF; a bare-LF message keeps bare LF). */
function eolOf(raw: Buffer): string {
  const i = raw.indexOf(0x0a);
  return i > 0 && raw[i - 1] === 0x0d ? '\r\n' : i === -1 ? '\r\n' : '\n';
}

/** Header values are single-line, printable and short: strip anything that could fold or inject a line. */
export function headerSafe(s: string, max = 900): string {
  const clean = s.replace(/[\r\n\0]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? clean.slice(0, max - 3) + '...' : clean;
}

export function prependHeader(raw: Buffer, name: string, value: string): Buffer {
  const line = Buffer.from(`${name}: ${headerSafe(value)}${eolOf(raw)}`, 'latin1');
  return Buffer.concat([line, raw], line.length + raw.length);
}

/** End of the header section (index of the blank line), or the message length when there is no body. */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const candidates = [crlf === -1 ? -1 : crlf + 2, lf === -1 ? -1 : lf + 1].filter((i) => i >= 0);
  return candidates.length ? Math.min(...candidates) : raw.length;
}

/**
 * Remove every `name:` field (with its folded continuation lines) from the top-level header section: a sender
 * must not be able to pre-set "clean", and a re-checked release must not carry our old verdict. Returns the
 * same Buffer (no copy) when there is nothing to remove.
 */
export function stripHeader(raw: Buffer, name: string): Buffer {
  const end = headerEnd(raw);
  const head = raw.subarray(0, end).toString('latin1');
  const lower = name.toLowerCase() + ':';
  if (!head.toLowerCase().includes(lower)) return raw;
  const lines = head.split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (continuation && dropping) continue;
    dropping = line.toLowerCase().startsWith(lower);
    if (!dropping) kept.push(line);
  }
  const newHead = Buffer.from(kept.join(''), 'latin1');
  if (newHead.length === end) return raw;
  return Buffer.concat([newHead, raw.subarray(end)]);
}
