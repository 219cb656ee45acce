/**
 * The two header facts a help-desk caller gives — Subject and Message-ID — read from the header block of an
 * accepted message for its `received` tracking event. Cheap on purpose (it runs before the 250): only the header
 * block is scanned, at most 64 KiB, no MIME parsing. Subject encoded-words (RFC 2047) are decoded so "Rechnung
 * März" is searchable as typed; an undecodable charset leaves the word as it was.
 */
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_SUBJECT = 250;
const MAX_MESSAGE_ID = 250;

export interface MessageFacts {
  subject?: string;
  messageIdHeader?: string;
}

function headerBlock(body: Buffer): string {
  const slice = body.subarray(0, MAX_HEADER_BYTES);
  if (slice[0] === 0x0a || (slice[0] === 0x0d && slice[1] === 0x0a)) return ''; // no headers at all
  let end = slice.indexOf('\r\n\r\n');
  if (end < 0) end = slice.indexOf('\n\n');
  // latin1 keeps every byte as one char; raw UTF-8 subjects (RFC 6532) are re-decoded below.
  return slice.subarray(0, end < 0 ? slice.length : end).toString('latin1');
}

function decodeWords(s: string): string {
  // Whitespace between two adjacent encoded-words is not part of the text (RFC 2047 §6.2).
  return s
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(
      /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g,
      (word, charset: string, enc: string, text: string) => {
        try {
          const bytes =
            enc.toUpperCase() === 'B'
              ? Buffer.from(text, 'base64')
              : Buffer.from(
                  text
                    .replace(/_/g, ' ')
                    .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
                  'latin1',
                );
          return new TextDecoder(charset.toLowerCase(), { fatal: false }).decode(bytes);
        } catch {
          return word; // unknown charset
        }
      },
    );
}

export function messageFacts(body: Buffer): MessageFacts {
  const out: MessageFacts = {};
  const unfolded = headerBlock(body).replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (name === 'subject' && out.subject === undefined) {
      const utf8 = Buffer.from(line.slice(i + 1), 'latin1').toString('utf8');
      out.subject = decodeWords(utf8.trim()).replace(/\s+/g, ' ').slice(0, MAX_SUBJECT);
    } else if (name === 'message-id' && out.messageIdHeader === undefined) {
      const v = line.slice(i + 1).trim();
      const m = /<[^<>\s]+>/.exec(v);
      out.messageIdHeader = (m ? m[0] : v).slice(0, MAX_MESSAGE_ID);
    }
    if (out.subject !== undefined && out.messageIdHeader !== undefined) break;
  }
  return out;
}
