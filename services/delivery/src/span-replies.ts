import type { Span } from '@opentelemetry/api';

/**
 * The remote server's reply on the `delivery attempt` span, for every outcome (a 250 included): "what did the
 * other side say" is the first question about any delivery, and the answer must be in the trace, not only in the
 * tracking event of a failure.
 */

export interface ParsedReply {
  readonly code: number;
  /** RFC 3463 enhanced status code (`2.0.0`), when the reply carries one. */
  readonly enhanced?: string;
  /** The text after the code(s). */
  readonly text: string;
}

/** `250 2.0.0 Ok: queued as X` → { code: 250, enhanced: '2.0.0', text: 'Ok: queued as X' }; null if no code. */
export function parseReply(reply: string): ParsedReply | null {
  const m = /^([2-5]\d\d)(?:[ -]([2-5]\.\d{1,3}\.\d{1,3})(?=\s|$))?[ -]?(.*)$/s.exec(reply.trim());
  if (!m) return null;
  return { code: Number(m[1]), ...(m[2] ? { enhanced: m[2] } : {}), text: m[3]!.trim() };
}

interface ResultLike {
  readonly status: 'delivered' | 'deferred' | 'failed';
  readonly reply: string;
  readonly remoteHost?: string | undefined;
}

/**
 * Sets `mailgate.smtp.reply.*` from the attempt's results: the reply that decided the attempt (the DATA reply when
 * something was delivered, else the first refusal), `mailgate.smtp.reply.source` = `remote` when a server gave
 * it or `local` when it is our own text (no server answered: DNS, connect, backoff), and every distinct reply in
 * `mailgate.smtp.replies` when recipients got different ones.
 */
export function recordReplies(span: Span, results: readonly ResultLike[]): void {
  const main =
    results.find((r) => r.status === 'delivered') ?? results.find((r) => r.status === 'failed') ?? results[0];
  if (!main) return;
  const parsed = parseReply(main.reply);
  span.setAttribute('mailgate.smtp.reply', main.reply);
  span.setAttribute('mailgate.smtp.reply.source', main.remoteHost ? 'remote' : 'local');
  if (parsed) {
    span.setAttribute('mailgate.smtp.reply.code', parsed.code);
    if (parsed.enhanced) span.setAttribute('mailgate.smtp.reply.enhanced_code', parsed.enhanced);
    span.setAttribute('mailgate.smtp.reply.text', parsed.text);
  }
  const distinct = [...new Set(results.map((r) => r.reply))];
  if (distinct.length > 1) span.setAttribute('mailgate.smtp.replies', distinct);
}
