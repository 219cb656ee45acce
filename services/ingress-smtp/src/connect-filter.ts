import { REPLIES, replyText } from './replies.js';

/**
 * Connection-time filtering (Postfix postscreen / Exchange connection filtering): the seam between ingress and
 * the shared DNSBL package (packages/dnsbl `createConnectFilter`). Ingress asks once per client IP, before the
 * greeting is useful:
 *
 *   action 'reject' → `554 5.7.1 <text naming the list>` and the connection closes — unless the filter has
 *                      recipient exceptions (dnsbl.atConnect.exceptions, e.g. postmaster@, abuse@): then the
 *                      session goes on, only exception recipients are accepted, the others get that 554 at RCPT.
 *   action 'pass'   → normal session.
 *   check() throws  → 421 4.7.0 (try again later): a lookup that cannot decide never lets the client through
 *                      unchecked (fail closed); the DNSBL package decides itself which DNS failures count as 'pass'.
 *
 * Trusted networks and authenticated submission are not filtered (they are our own servers / users).
 */
export interface ConnectFilterResult {
  readonly action: 'reject' | 'pass';
  /** The list that matched (label or zone name). */
  readonly zone?: string;
  /** Text for the reply (the list's TXT record or a generic explanation). */
  readonly text?: string;
  readonly score: number;
}

export interface ConnectFilter {
  check(ip: string): Promise<ConnectFilterResult>;
  close(): Promise<void>;
  /** Recipients a listed client may still reach; empty/absent = refuse listed clients at connect. */
  readonly exceptions?: readonly string[];
  isException?(rcpt: string): boolean;
}

/** The 554 reply text for a listed client (REPLIES.listed); values from DNS are kept to one printable line. */
export function listedReplyText(ip: string, r: ConnectFilterResult): string {
  return replyText(REPLIES.listed(ip, r));
}
