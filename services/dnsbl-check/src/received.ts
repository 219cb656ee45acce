import { normalizeIp, type CidrList } from '@mailgate/dnsbl';

/**
 * Deep header inspection: the IP a trusted relay received the message from, read from the Received line that
 * relay added. Only lines added by trusted hosts are believed — everything below the first untrusted hop is
 * under the sender's control and may be forged.
 */

/** The connecting IP recorded in a Received field's `from` clause, or null. */
export function receivedFromIp(value: string): string | null {
  const m = /^\s*from\s+([\s\S]*?)(?:\s+by\s+|;|$)/i.exec(value);
  if (!m) return null;
  const from = m[1]!;
  // Postfix/sendmail/Exim: "host (rdns [1.2.3.4])", "[1.2.3.4]", "([IPv6:2001:db8::1]:port)".
  for (const b of from.matchAll(/\[([^\]\s]+)\]/g)) {
    const ip = normalizeIp(b[1]!);
    if (ip) return ip;
  }
  // Exchange: "host (1.2.3.4)"; some MTAs: "from 1.2.3.4".
  for (const p of from.matchAll(/[(\s]((?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]*:[0-9a-f:.]+)[)\s]/gi)) {
    const ip = normalizeIp(p[1]!);
    if (ip) return ip;
  }
  const bare = normalizeIp(from.split(/\s/)[0] ?? '');
  return bare;
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
 * client itself (our own ingress' Received line), it is skipped: the line below it is the relay's.
 */
export function findOrigin(clientIp: string, received: readonly string[], trusted: CidrList, maxHops: number): Origin {
  const client = normalizeIp(clientIp) ?? clientIp;
  if (!trusted.has(client)) return { ip: client, source: 'client', via: [] };
  const ips = received.map(receivedFromIp);
  let i = ips[0] === client ? 1 : 0;
  let current = client;
  const via: string[] = [];
  while (trusted.has(current)) {
    if (via.length >= maxHops) return { ip: null, source: 'received', via, note: `more than ${maxHops} trusted hops` };
    via.push(current);
    if (i >= ips.length) return { ip: null, source: 'received', via, note: 'no Received line from the trusted relay' };
    const next = ips[i++];
    if (!next) return { ip: null, source: 'received', via, note: 'unreadable Received line from a trusted relay' };
    current = next;
  }
  return { ip: current, source: 'received', via };
}
