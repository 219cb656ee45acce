import { stripComments } from './structured.js';

/**
 * Content-Transfer-Encoding. The known encodings decode as RFC 2045 says; base64 uses Node's decoder (skips
 * whitespace and stray characters like clients do); quoted-printable is the loop below; x-uuencode (which
 * Thunderbird and Outlook decode) the small decoder below.
 *
 * An encoding that is not exactly one of the known names (`base64 (comment)`, `x-base64`, `base-64`, a typo) is
 * ambiguous: some reader will decode it as the closest known encoding and another will show the bytes as they are.
 * `readingsOf` names every plausible reading so a judge sees them all.
 */

export type Decoding = 'identity' | 'base64' | 'quoted-printable' | 'uuencode';

export interface EncodingReading {
  /** The decodings a reader may apply, most likely first, without duplicates. */
  readonly decodings: readonly Decoding[];
  /** Why the value is ambiguous (undefined for an exact known name). */
  readonly anomaly?: string;
}

const IDENTITY = new Set(['', '7bit', '8bit', 'binary']);

/** The readings of one Content-Transfer-Encoding value (undefined = no header). */
export function encodingReadings(raw: string | undefined): EncodingReading {
  if (raw === undefined) return { decodings: ['identity'] };
  const exact = raw.trim().toLowerCase();
  if (IDENTITY.has(exact)) return { decodings: ['identity'] };
  if (exact === 'base64') return { decodings: ['base64'] };
  if (exact === 'quoted-printable') return { decodings: ['quoted-printable'] };
  const v = stripComments(exact).replace(/\s+/g, '');
  const anomaly = `transfer encoding "${raw.slice(0, 60)}"`;
  let closest: Decoding | undefined;
  if (IDENTITY.has(v) || /^(x-)?([78]-?bits?|binary)$/.test(v)) closest = 'identity';
  else if (/base-?64|b64/.test(v)) closest = 'base64';
  else if (/quoted|printable|^(x-)?qp$/.test(v)) closest = 'quoted-printable';
  else if (/uu/.test(v)) closest = 'uuencode';
  // Unknown: shown raw by strict readers; decoded as base64 by readers that sniff it.
  const decodings: Decoding[] = closest ? [closest, 'identity'] : ['identity', 'base64'];
  return { decodings: [...new Set(decodings)], anomaly };
}

export function decodeBody(body: Buffer, decoding: Decoding | string): Buffer {
  switch (decoding) {
    case 'base64':
      return Buffer.from(body.toString('latin1'), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    case 'uuencode':
      return decodeUuencode(body);
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

/**
 * uuencode: an optional `begin <mode> <name>` line, then lines whose first character gives the byte count.
 * Lenient: lines before `begin` are skipped when there is a begin line; decoding stops at `end` or a 0-length line.
 */
export function decodeUuencode(body: Buffer): Buffer {
  const lines = body.toString('latin1').split(/\r?\n/);
  let i = lines.findIndex((l) => /^begin\s/.test(l));
  i = i < 0 ? 0 : i + 1;
  const out: number[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === 'end' || line.length === 0) break;
    const n = (line.charCodeAt(0) - 0x20) & 0x3f;
    if (n === 0) break;
    const bytes: number[] = [];
    for (let j = 1; j + 3 < line.length + 3 && bytes.length < n; j += 4) {
      const c = [0, 1, 2, 3].map((k) => ((line.charCodeAt(j + k) || 0x20) - 0x20) & 0x3f);
      bytes.push(
        ((c[0]! << 2) | (c[1]! >> 4)) & 0xff,
        ((c[1]! << 4) | (c[2]! >> 2)) & 0xff,
        ((c[2]! << 6) | c[3]!) & 0xff,
      );
    }
    out.push(...bytes.slice(0, n));
  }
  return Buffer.from(out);
}

/** The `begin <mode> <name>` file name of a uuencoded body, if any. */
export function uuencodeName(body: Buffer): string | undefined {
  const m = /^begin[ \t]+[0-7]{3,4}[ \t]+([^\r\n]+?)[ \t]*\r?$/m.exec(
    body.toString('latin1', 0, Math.min(body.length, 1024)),
  );
  return m?.[1];
}
