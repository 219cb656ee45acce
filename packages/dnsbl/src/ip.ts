import net from 'node:net';
import { networkMatcher, parseCidr as parseNetwork, type Network, type NetworkMatcher } from '@mailgate/runtime';

/**
 * Address helpers for DNSBL queries: the reversed query labels (RFC 5782 §2.1 for IPv4, §2.4 nibbles for IPv6)
 * and the networks of trusted relays and skipped clients. CIDR matching itself is @mailgate/runtime's
 * networkMatcher (node's BlockList); this file adds the address forms found in Received headers.
 */

/** Strips an `IPv6:` tag (Received headers), brackets and an IPv4-mapped prefix (`::ffff:1.2.3.4` → `1.2.3.4`). */
export function normalizeIp(ip: string): string | null {
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (/^ipv6:/i.test(s)) s = s.slice(5);
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  if (mapped) s = mapped[1]!;
  if (net.isIPv4(s)) return s;
  if (net.isIPv6(s)) return s.toLowerCase();
  return null;
}

/** 16 bytes of an IPv6 address (accepts `::` and an embedded dotted quad). */
export function ipv6Bytes(addr: string): Buffer {
  let a = addr;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    a = a.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const parts = a.split('::');
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts.length > 1 && parts[1] ? parts[1].split(':') : [];
  const groups =
    parts.length > 1 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return buf;
}

/** The name to query in an IP zone: `4.3.2.1.zone` or 32 reversed nibbles + zone. */
export function reverseIp(ip: string): string {
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.');
  const hex = ipv6Bytes(ip).toString('hex');
  return hex.split('').reverse().join('.');
}

/**
 * Parses `a.b.c.d`, `a.b.c.d/n`, `x::y/n` (the address in any form normalizeIp accepts); throws on nonsense
 * (config validation uses this).
 */
export function parseCidr(text: string): Network {
  const t = text.trim();
  const slash = t.indexOf('/');
  const ip = normalizeIp(slash === -1 ? t : t.slice(0, slash));
  if (!ip) throw new Error(`not an IP address or CIDR: ${text}`);
  const network = parseNetwork(slash === -1 ? ip : ip + t.slice(slash));
  if (!network) throw new Error(`bad prefix length in ${text}`);
  return network;
}

/** A set of networks, e.g. trusted relays or networks never worth a DNS query. */
export class CidrList {
  private readonly matcher: NetworkMatcher;
  /** Normalised `address/prefix` → the entry as configured. */
  private readonly written = new Map<string, string>();
  constructor(cidrs: readonly string[]) {
    const normalised = cidrs.map((c) => {
      const n = parseCidr(c);
      const key = `${n.address}/${n.prefix}`;
      if (!this.written.has(key)) this.written.set(key, c.trim());
      return key;
    });
    this.matcher = networkMatcher(normalised);
  }
  has(ip: string): boolean {
    const n = normalizeIp(ip);
    return n !== null && this.matcher.matches(n);
  }
  /** The first network (as configured) that contains `ip`, or null. */
  find(ip: string): string | null {
    const n = normalizeIp(ip);
    const hit = n === null ? null : this.matcher.match(n);
    return hit === null ? null : (this.written.get(hit) ?? hit);
  }
  get size(): number {
    return this.matcher.size;
  }
}

/** A dotted-quad string to its 32-bit value (unsigned). */
export function ipv4ToInt(ip: string): number {
  const o = ip.split('.').map(Number);
  return ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!;
}
