import { MAIL_HEADERS } from '@mailgate/contracts';
import type { MimePart, ParsedMessage } from '@mailgate/mail';

/**
 * Removes parts from the raw message by cutting their exact byte ranges; every byte outside the removed parts
 * stays as it was (so signatures over untouched parts, and the parts themselves, survive unchanged).
 *
 *  - strip: the part is replaced in place by a short text/plain notice naming the file and the rule.
 *  - silent-delete: the part's delimiter and bytes are cut. When that would leave its multipart empty (or the part
 *    is the whole message body) it is replaced by an empty text/plain part instead, so the result stays valid MIME.
 * A header `X-Mailgate-Attachment-Policy` is prepended naming the counts and rules (no file names: header-safe).
 */

export interface Removal {
  readonly part: MimePart;
  readonly mode: 'strip' | 'silent-delete';
  /** For strip: the notice's text (one paragraph). */
  readonly notice: string;
  readonly rule: string;
}

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly bytes: Buffer;
}

/** Raw header fields (folded lines kept verbatim) of a header block, each with its lower-cased name. */
function rawFields(raw: Buffer, start: number, end: number): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  let pos = start;
  let cur: { name: string; start: number } | null = null;
  while (pos < end) {
    let nl = raw.indexOf(0x0a, pos);
    if (nl < 0 || nl >= end) nl = end - 1;
    const first = raw[pos];
    if ((first === 0x20 || first === 0x09) && cur) {
      pos = nl + 1;
      continue;
    }
    if (cur) out.push({ name: cur.name, bytes: raw.subarray(cur.start, pos) });
    const colon = raw.indexOf(0x3a, pos);
    const name = colon > pos && colon < nl ? raw.toString('latin1', pos, colon).trim().toLowerCase() : '';
    cur = { name, start: pos };
    pos = nl + 1;
  }
  if (cur) out.push({ name: cur.name, bytes: raw.subarray(cur.start, end) });
  return out;
}

function wrapBase64(b: Buffer, eol: string): string {
  return (b.toString('base64').match(/.{1,76}/g) ?? []).join(eol);
}

/** A replacement for `part`: its non-Content-* header fields kept byte-for-byte, then a text/plain body. */
function replacement(raw: Buffer, part: MimePart, text: string, eol: string): Buffer {
  const kept = rawFields(raw, part.header.start, part.header.end)
    .filter((f) => f.name !== '' && !f.name.startsWith('content-'))
    .map((f) => {
      // The last kept field of a block that had no trailing line break still needs one before our fields.
      const b = f.bytes;
      return b.length && b[b.length - 1] === 0x0a ? b : Buffer.concat([b, Buffer.from(eol)]);
    });
  const ascii = /^[\x20-\x7e\r\n\t]*$/.test(text);
  const body = text.split(/\r?\n/).join(eol);
  const head = [
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${ascii ? '7bit' : 'base64'}`,
    'Content-Disposition: inline',
  ].join(eol);
  const encoded = ascii ? body : wrapBase64(Buffer.from(body, 'utf8'), eol);
  return Buffer.concat([...kept, Buffer.from(`${head}${eol}${eol}${encoded}${eol}`, 'utf8')]);
}

export function rewrite(raw: Buffer, parsed: ParsedMessage, removals: readonly Removal[], addHeader = true): Buffer {
  const eol = parsed.eol;
  // A part decoded out of an encoded message/rfc822 is removed by removing that container (one edit per target).
  const targets = new Map<MimePart, Removal>();
  for (const r of removals) {
    const p = r.part.container ?? r.part;
    const had = targets.get(p);
    if (!had || (had.mode === 'silent-delete' && r.mode === 'strip')) targets.set(p, { ...r, part: p });
  }
  const removed = new Set([...targets.values()].filter((r) => r.mode === 'silent-delete').map((r) => r.part));
  const edits: Edit[] = [];
  for (const r of targets.values()) {
    const p = r.part;
    if (r.mode === 'silent-delete' && p.span && p.parent?.children.some((c) => !removed.has(c))) {
      edits.push({ start: p.span.start, end: p.span.end, bytes: Buffer.alloc(0) });
      continue;
    }
    // Replacing removes nothing structural: delete of the last survivor becomes an empty text part.
    if (r.mode === 'silent-delete') removed.delete(p);
    const text = r.mode === 'strip' ? r.notice : '';
    edits.push({ start: p.header.start, end: p.end, bytes: replacement(raw, p, text, eol) });
  }
  edits.sort((a, b) => a.start - b.start);
  const rules = [...new Set(removals.map((r) => r.rule))].join(',');
  const stripped = removals.filter((r) => r.mode === 'strip').length;
  const deleted = removals.length - stripped;
  const header = `${MAIL_HEADERS.attachmentPolicy}: stripped=${stripped}; deleted=${deleted}; rules=${rules}${eol}`;
  const chunks: Buffer[] = addHeader ? [Buffer.from(header.replace(/[^\x20-\x7e\r\n]/g, '?'), 'latin1')] : [];
  let pos = 0;
  for (const e of edits) {
    chunks.push(raw.subarray(pos, e.start), e.bytes);
    pos = e.end;
  }
  chunks.push(raw.subarray(pos));
  return Buffer.concat(chunks);
}
