/**
 * Content-Transfer-Encoding decoding of a leaf part's body. base64 uses Node's decoder (skips whitespace and
 * stray characters like clients do); quoted-printable is the small loop below. Unknown encodings (x-uuencode,
 * typos) are judged on the raw bytes: magic bytes of an unencoded file still show, and an undetectable blob is
 * `unknown`, which an allow-list does not let through.
 */
export function decodeBody(body: Buffer, encoding: string): Buffer {
  switch (encoding) {
    case 'base64':
      return Buffer.from(body.toString('latin1'), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      return body;
  }
}

function hexVal(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

export function decodeQuotedPrintable(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length);
  let o = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== 0x3d) {
      out[o++] = c;
      continue;
    }
    const h = hexVal(body[i + 1]);
    const l = hexVal(body[i + 2]);
    if (h >= 0 && l >= 0) {
      out[o++] = (h << 4) | l;
      i += 2;
      continue;
    }
    // Soft line break: '=' then optional trailing whitespace then (CR)LF.
    let j = i + 1;
    while (body[j] === 0x20 || body[j] === 0x09) j++;
    if (body[j] === 0x0a) {
      i = j;
      continue;
    }
    if (body[j] === 0x0d && body[j + 1] === 0x0a) {
      i = j + 1;
      continue;
    }
    if (j >= body.length) break; // '=' at the very end
    out[o++] = c; // a literal '=' that was not encoded
  }
  return out.subarray(0, o);
}
