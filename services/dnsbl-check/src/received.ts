import { normalizeIp, type CidrList } from '@mailgate/dnsbl';

/**
 * Deep header inspection: the IP a trusted relay received the message from, read from the Received line that
 * relay added. Only lines added by trusted hosts are believed — everything below the first untrusted hop is
 * under the sender's control and may be forged.
 *
 * Inside a line written by a trusted relay, the sender still controls one thing: its HELO/EHLO argument, which
 * most MTAs copy into the `from` clause. A HELO of `[10.0.0.5]` must never be read as the connecting address, so
 * each format is parsed by position: the address is taken from where that MTA writes the address it saw on the
 * socket, never from where it writes the HELO.
 */

/** An IP literal as written in Received lines: `1.2.3.4`, `IPv6:2001:db8::1`, `2001:db8::1`, `::ffff:1.2.3.4`. */
const ADDR = String.raw`(?:IPv6:)?[0-9A-Fa-f:.]*[0-9A-Fa-f](?:%[\w.-]+)?`;
/** Postfix / sendmail / Gmail / Courier / mailgate: `rdns [IP]`, `unknown [IP]`, `user@rdns [IP] (may be forged)`. */
const NAME_THEN_BRACKET = new RegExp(String.raw`^[^\s\[\]()]+\s+\[(${ADDR})\](?::\d+)?(?:\s|$)`);
/** Exim (`[IP]:port helo=x`), sendmail / Exchange 2003 without rDNS (`[IP]`). */
const BRACKET_FIRST = new RegExp(String.raw`^\[(${ADDR})\](?::\d+)?(?:\s|$)`);
/** Exchange / Microsoft 365 (`IP`), qmail (`IP`, `ident@IP`). */
const BARE = new RegExp(String.raw`^(?:[^\s@()\[\]]*@)?(${ADDR})$`);
/** Exim's comment when the name is the address itself: only `key=value` items (`port=`, `helo=`, `ident=`). */
const EXIM_FIELDS = /^(?:(?:helo|port|ident)=\S*)(?:\s+(?:helo|port|ident)=\S*)*$/i;
/** Words that may follow the `from` clause (RFC 5321 §4.4 Stamp plus what common MTAs add). */
const AFTER_FROM = /^(?:$|;|(?:by|with|id|via|for)(?:\s|$))/i;

/** The `from` clause of a Received value: the name after `from`, then the parenthesised comments in order. */
function fromClause(value: string): { name: string; comments: string[]; rest: string } | null {
  const m = /^\s*from\s+([^\s()]+)/i.exec(value);
  if (!m) return null;
  const comments: string[] = [];
  let i = m[0].length;
  for (;;) {
    while (i < value.length && /\s/.test(value[i]!)) i++;
    if (value[i] !== '(') break;
    // Balanced: sendmail nests "(may be forged)" inside its comment.
    let depth = 0;
    const start = i;
    for (; i < value.length; i++) {
      if (value[i] === '(') depth++;
      else if (value[i] === ')' && --depth === 0) break;
    }
    if (depth !== 0) return null;
    comments.push(value.slice(start + 1, i).trim());
    i++;
  }
  return { name: m[1]!, comments, rest: value.slice(i) };
}

/**
 * The connecting IP the receiving MTA recorded in a Received field's `from` clause, or null when the line records
 * none or is not in a format we know (the caller then stops believing the chain). The HELO is never taken:
 *
 * - Postfix, sendmail, Gmail, mailgate: `from HELO (rdns [IP])`, `from HELO (unknown [IPv6:…])`,
 *   `from HELO (rdns. [IP])`, `from HELO ([IP])`, `from HELO (user@rdns [IP] (may be forged))`
 * - Exim: `from rdns ([IP]:port helo=HELO)`, `from [IP] (helo=HELO)`, `from [IP] (port=N helo=HELO)`, `from [IP]`
 * - Exchange / Microsoft 365: `from HELO (IP) by host (IP) with Microsoft SMTP Server …`
 * - qmail: `from rdns (HELO helo) (IP)`, `from unknown (HELO helo) (ident@IP)`, `from rdns (IP)`
 * - bare `from IP by …` (no comment at all: the MTA wrote the address where others write the HELO)
 */
export function receivedFromIp(value: string): string | null {
  const clause = fromClause(value);
  if (!clause) return null;
  const { name, comments, rest } = clause;
  // Anything other than the stamp's next keyword after the comments: a HELO with spaces, an unknown layout.
  if (!AFTER_FROM.test(rest.trim())) return null;
  for (const c of comments) {
    // qmail writes the HELO in its own comment: "(HELO [10.0.0.5])" is the sender's word, skip it.
    if (/^helo\s/i.test(c)) continue;
    const m = BRACKET_FIRST.exec(c) ?? NAME_THEN_BRACKET.exec(c) ?? BARE.exec(c);
    if (m) return normalizeIp(m[1]!);
  }
  // Exim names the connection by its address when it has no verified host name; the HELO then sits in a
  // "helo=" item. Only that layout (or no comment at all) lets the name be the address.
  if (comments.length === 0 || (comments.length === 1 && EXIM_FIELDS.test(comments[0]!))) {
    return normalizeIp(name);
  }
  return null;
}

/**
 * Lines a trusted relay writes in addition to its `from` line for the same hop: qmail-queue's
 * `(qmail 1234 invoked from network)` sits on top of qmail-smtpd's line. Skipping it never skips a hop.
 */
function sameHopNote(value: string): boolean {
  return /^\s*\(qmail \d+ invoked from network\)/i.test(value);
}

export interface Origin {
  /** The IP to judge, or null when the chain ends in a line we cannot read. */
  readonly ip: string | null;
  readonly source: 'client' | 'received';
  /** Trusted hops walked (client first). */
  readonly via: readonly string[];
  readonly note?: string;
}

/**
 * Walks back from the client through trusted relays. `received` is top to bottom. If the top line records the
 * client itself (our own ingress' Received line), it is skipped: the line below it is the relay's. The walk stops
 * at the first untrusted hop (judged) or the first line it cannot read (origin unknown): a line it cannot read
 * tells nothing about which hop comes next, so nothing below it is believed either.
 */
export function findOrigin(clientIp: string, received: readonly string[], trusted: CidrList, maxHops: number): Origin {
  const client = normalizeIp(clientIp) ?? clientIp;
  if (!trusted.has(client)) return { ip: client, source: 'client', via: [] };
  const lines = received.filter((v) => !sameHopNote(v));
  let i = lines.length > 0 && receivedFromIp(lines[0]!) === client ? 1 : 0;
  let current = client;
  const via: string[] = [];
  while (trusted.has(current)) {
    if (via.length >= maxHops) return { ip: null, source: 'received', via, note: `more than ${maxHops} trusted hops` };
    via.push(current);
    if (i >= lines.length)
      return { ip: null, source: 'received', via, note: 'no Received line from the trusted relay' };
    const next = receivedFromIp(lines[i++]!);
    if (!next) return { ip: null, source: 'received', via, note: 'unreadable Received line from a trusted relay' };
    current = next;
  }
  return { ip: current, source: 'received', via };
}
