import net from 'node:net';

/** Strip the IPv4-mapped prefix a dual-stack socket reports (`::ffff:192.0.2.1` → `192.0.2.1`). */
export function normalizeIp(ip: string): string {
  const s = ip.trim();
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  return (m ? m[1]! : s).toLowerCase();
}

/** Parse `a.b.c.d`, `a.b.c.d/n`, `v6` or `v6/n`; null when invalid. */
export function parseCidr(entry: string): { address: string; prefix: number; type: 'ipv4' | 'ipv6' } | null {
  const [addr, len, extra] = entry.trim().split('/');
  if (extra !== undefined || !addr) return null;
  const ip = normalizeIp(addr);
  const v = net.isIP(ip);
  if (v === 0) return null;
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  return { address: ip, prefix, type: v === 4 ? 'ipv4' : 'ipv6' };
}

export const isCidr = (s: string): boolean => parseCidr(s) !== null;

export interface NetworkMatcher {
  /** True when `ip` lies in one of the networks. IPv4-mapped IPv6 addresses match their IPv4 networks. */
  matches(ip: string | undefined | null): boolean;
  readonly size: number;
}

/** A matcher over CIDR networks (IPv4 and IPv6), backed by node's BlockList. */
export function networkMatcher(cidrs: readonly string[]): NetworkMatcher {
  const list = new net.BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p) throw new Error(`invalid network ${JSON.stringify(c)}`);
    list.addSubnet(p.address, p.prefix, p.type);
  }
  return {
    size: cidrs.length,
    matches(ip) {
      if (!ip || cidrs.length === 0) return false;
      const n = normalizeIp(ip);
      const v = net.isIP(n);
      if (v === 0) return false;
      return list.check(n, v === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
