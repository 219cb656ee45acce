/**
 * Just enough RFC 5322 header handling for this stage: the header block, unfolded fields by name, and a
 * prepended header line that leaves every other byte of the message as it was.
 */

/** End of the header block (index of the blank line), or the whole buffer when there is no body. */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  if (crlf === -1) return lf === -1 ? raw.length : lf;
  return lf === -1 ? crlf : Math.min(crlf, lf);
}

/** Values of every header field named `name` (case-insensitive), unfolded, top to bottom. */
export function headerValues(raw: Buffer, name: string, maxHeaderBytes = 256 * 1024): string[] {
  const block = raw.subarray(0, Math.min(headerEnd(raw), maxHeaderBytes)).toString('latin1');
  const lines = block.split(/\r?\n/);
  const out: string[] = [];
  const want = name.toLowerCase() + ':';
  let cur: string | null = null;
  for (const line of lines) {
    if (/^[ \t]/.test(line)) {
      if (cur !== null) cur += ' ' + line.trim();
      continue;
    }
    if (cur !== null) out.push(cur);
    cur = line.slice(0, want.length).toLowerCase() === want ? line.slice(want.length).trim() : null;
  }
  if (cur !== null) out.push(cur);
  return out;
}

/** The raw message with `Name: value` prepended, using the message's own line ending. */
export function prependHeader(raw: Buffer, name: string, value: string): Buffer {
  const firstLf = raw.indexOf('\n');
  const eol = firstLf > 0 && raw[firstLf - 1] === 0x0d ? '\r\n' : firstLf === -1 ? '\r\n' : '\n';
  const clean = value.replace(/[\r\n]+/g, ' ');
  return Buffer.concat([Buffer.from(`${name}: ${clean}${eol}`, 'latin1'), raw]);
}
