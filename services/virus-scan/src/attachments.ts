import PostalMime from 'postal-mime';

export interface DecodedAttachment {
  /** File name as the sender gave it, or `part-<n>`. */
  readonly name: string;
  readonly mimeType: string;
  readonly content: Buffer;
}

/**
 * Every attachment of the message, decoded (base64/quoted-printable undone), including those of attached
 * message/rfc822 parts. clamd already unpacks MIME itself; this is the belt-and-braces option
 * `scanAttachmentsSeparately` for mail clamd's MIME parser may read differently from the user's client.
 */
export async function decodedAttachments(raw: Buffer): Promise<DecodedAttachment[]> {
  const email = await PostalMime.parse(raw, { attachmentEncoding: 'arraybuffer', maxNestingDepth: 64 });
  return email.attachments.map((a, i) => {
    const c = a.content;
    const content =
      typeof c === 'string'
        ? Buffer.from(c, a.encoding === 'base64' ? 'base64' : 'utf8')
        : c instanceof ArrayBuffer
          ? Buffer.from(c)
          : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    return { name: a.filename ?? `part-${i + 1}`, mimeType: a.mimeType, content };
  });
}
