import { DEFAULT_MIME_LIMITS, scanTargets, walkMime } from '@mailgate/mail';

export interface DecodedAttachment {
  /** File name as the sender gave it, or `part-<n>` (IMAP part number), plus how it was read when not plainly. */
  readonly name: string;
  readonly content: Buffer;
}

/**
 * The parts to scan on their own, besides the whole message: every reading of every leaf that the attachment
 * policy judges (`@mailgate/mail` scanTargets — the same walk, so no stage sees a part another misses), including
 * attached message/rfc822 parts and parts only a lenient reader finds. clamd unpacks MIME itself; these are the
 * parts its MIME parser may read differently from the user's client. Plain body text with one standard reading is
 * left to the whole-message scan. Throws MalformedMimeError when the walk cannot make sense of the message.
 */
export async function decodedAttachments(raw: Buffer): Promise<DecodedAttachment[]> {
  const parsed = walkMime(raw, DEFAULT_MIME_LIMITS);
  return scanTargets(parsed, { skipPlainBodyText: true }).map((t) => ({
    name:
      (t.filename ?? `part-${t.part || 'body'}`) +
      (t.how === 'identity' || t.how === 'base64' || t.how === 'quoted-printable' ? '' : ` (${t.how})`),
    content: t.content,
  }));
}
