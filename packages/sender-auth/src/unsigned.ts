/**
 * DKIM and ARC verify signatures over the body; an unsigned message has nothing to verify there. mailauth's
 * `dkimVerify` still reads the whole message (line splitting, canonicalisation) to produce its "none" result and
 * the From addresses DMARC needs — most of the DKIM check's CPU for a plain 10 KiB message. For a message without
 * any DKIM-Signature or ARC header, handing mailauth only the header section (through the blank line that ends
 * it) gives the same result from the same header bytes.
 *
 * Conservative by construction: any doubt means "verify the whole message" — a header section that is not plain
 * CRLF (bare CR or LF: where it ends would then be the parser's call), no blank line, or the text `dkim-signature`
 * or `arc-` anywhere in the header section (field names cannot be folded, so a signature field cannot hide from
 * this search; a false hit only costs the full read).
 */
const CR = 0x0d;
const LF = 0x0a;

/** The header section of `raw` when it carries no DKIM or ARC signature; null = verify all of `raw`. */
export function unsignedHeaderSection(raw: Buffer): Buffer | null {
  if (raw.length === 0 || raw[0] === CR || raw[0] === LF) return null;
  const blank = raw.indexOf('\r\n\r\n');
  if (blank < 0) return null;
  const end = blank + 4;
  if (end === raw.length) return null; // no body: nothing to save
  for (let i = 0; i < blank + 2; i++) {
    const b = raw[i];
    if (b === CR && raw[i + 1] !== LF) return null;
    if (b === LF && raw[i - 1] !== CR) return null;
  }
  const head = raw.subarray(0, end);
  const text = head.toString('latin1').toLowerCase();
  if (text.includes('dkim-signature') || text.includes('arc-')) return null;
  return head;
}
