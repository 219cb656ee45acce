import net from 'node:net';

/**
 * Address helpers for DNSBL queries: the reversed query labels (RFC 5782 §2.1 for IPv4, §2.4 nibbles for IPv6)
 * and CIDR matching for return codes, trusted relays and skipped networks. No dependency: the formats are small.
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

function ipBytes(ip: string): Buffer {
  return net.isIPv4(ip) ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
}

/** The name to query in an IP zone: `4.3.2.1.zone` or 32 reversed nibbles + zone. */
export function reverseIp(ip: string): string {
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.');
  const hex = ipv6Bytes(ip).toString('hex');
  return hex.split('').reverse().join('.');
}

export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
  readonly bits: number;
  readonly text: string;
}

/** Parses `a.b.c.d`, `a.b.c.d/n`, `x::y/n`; throws on nonsense (config validation uses this). */
export function parseCidr(text: string): Cidr {
  const [addr, len] = text.trim().split('/');
  const ip = addr ? normalizeIp(addr) : null;
  if (!ip) throw new Error(`not an IP address or CIDR: ${text}`);
  const family = net.isIPv4(ip) ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  const bits = len === undefined ? max : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new Error(`bad prefix length in ${text}`);
  return { family, bytes: ipBytes(ip), bits, text: text.trim() };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const fam = net.isIPv4(ip) ? 4 : net.isIPv6(ip) ? 6 : 0;
  if (fam !== c.family) return false;
  const b = ipBytes(ip);
  let bits = c.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((b[i]! & mask) !== (c.bytes[i]! & mask)) return false;
  }
  return true;
}

/** A set of networks, e.g. trusted relays or networks never worth a DNS query. */
export class CidrList {
  private readonly list: Cidr[];
  constructor(cidrs: readonly string[]) {
    this.list = cidrs.map(parseCidr);
  }
  has(ip: string): boolean {
    const n = normalizeIp(ip);
    return n !== null && this.list.some((c) => cidrContains(c, n));
  }
  get size(): number {
    return this.list.length;
  }
}

/** A dotted-quad string to its 32-bit value (unsigned). */
export function ipv4ToInt(ip: string): number {
  const o = ip.split('.').map(Number);
  return ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!;
}
