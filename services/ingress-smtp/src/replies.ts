/**
 * Reply catalogue for the protocol-edge refusals: one place for the code, the enhanced status code (RFC 3463)
 * and the text, so tests and docs quote the same strings the server sends.
 */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export const REPLIES = {
  /** RFC 5321 §4.5.3.1.4 / §4.2.4: a command line longer than the limit. The session stays usable. */
  lineTooLong: { code: 500, enhanced: '5.5.2', text: 'Line too long' },
  /** RFC 4954 §4: an AUTH line or SASL response over 12288 octets. The exchange is cancelled, the session kept. */
  authLineTooLong: { code: 500, enhanced: '5.5.6', text: 'Authentication Exchange line is too long' },
  /** A NUL octet in the message content (RFC 5322 forbids it; downstream parsers must never see one). */
  nulInData: {
    code: 554,
    enhanced: '5.6.0',
    text: 'Message contains NUL characters; refused',
  },
} as const satisfies Record<string, SmtpReply>;

/** The reply text as smtp-guard sends it: the enhanced code first, so it is not re-prefixed. */
export function replyText(r: SmtpReply): string {
  return `${r.enhanced} ${r.text}`;
}
