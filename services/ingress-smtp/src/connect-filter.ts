/**
 * Connection-time filtering (Postfix postscreen / Exchange connection filtering): the seam between ingress and
 * the shared DNSBL package (packages/dnsbl `createConnectFilter`). Ingress asks once per client IP, before the
 * greeting is useful:
 *
 *   action 'reject' → `554 5.7.1 … blocked using <zone>: <text>` and the connection closes, unless
 *                      `ingress.dnsblExceptions` lists recipients a listed client may still reach (postmaster@…):
 *                      then the session goes on and only those recipients are accepted.
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
}

/** The 554 reply text for a listed client; values from DNS are kept to one printable line. */
export function listedReplyText(ip: string, r: ConnectFilterResult): string {
  const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  const zone = r.zone ? ` using ${printable(r.zone)}` : '';
  const text = r.text ? `: ${printable(r.text)}` : '';
  return `5.7.1 Service unavailable; client [${ip}] blocked${zone}${text}`;
}
