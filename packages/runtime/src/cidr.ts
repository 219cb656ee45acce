import net from 'node:net';

/** Strip the IPv4-mapped prefix a dual-stack socket reports (`::ffff:192.0.2.1` → `192.0.2.1`). */
export function normalizeIp(ip: string): string {
  const s = ip.trim();
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  return (m ? m[1]! : s).toLowerCase();
}

/** A network as parsed from config: normalised address, prefix length, family. */
export interface Network {
  readonly address: string;
  readonly prefix: number;
  readonly type: 'ipv4' | 'ipv6';
}

/** Parse `a.b.c.d`, `a.b.c.d/n`, `v6` or `v6/n`; null when invalid. */
export function parseCidr(entry: string): Network | null {
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
  /** The first configured network (as written) that contains `ip`, or null: for messages ("trusted network …"). */
  match(ip: string | undefined | null): string | null;
  readonly size: number;
}

type Family = 'ipv4' | 'ipv6';

/** Addresses whose answer a matcher remembers (a few hundred KiB at most). */
const MEMO_MAX = 4096;

function familyOf(ip: string | undefined | null): { address: string; type: Family } | null {
  if (!ip) return null;
  const address = normalizeIp(ip);
  const v = net.isIP(address);
  return v === 0 ? null : { address, type: v === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * A matcher over CIDR networks (IPv4 and IPv6), backed by node's BlockList: the one CIDR implementation of the
 * workspace (ingress, admin, dnsbl, sender-auth, spam-check). An address is only checked against networks of its
 * own family: BlockList would also match an IPv4 address against an IPv6 network covering ::ffff:0:0/96 (so
 * `::/0` would trust every IPv4 client), which is not what an operator listing IPv6 networks means.
 */
export function networkMatcher(cidrs: readonly string[]): NetworkMatcher {
  const lists: Record<Family, net.BlockList> = { ipv4: new net.BlockList(), ipv6: new net.BlockList() };
  const entries: { text: string; type: Family; list: net.BlockList }[] = [];
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p) throw new Error(`invalid network ${JSON.stringify(c)}`);
    lists[p.type].addSubnet(p.address, p.prefix, p.type);
    const one = new net.BlockList();
    one.addSubnet(p.address, p.prefix, p.type);
    entries.push({ text: c.trim(), type: p.type, list: one });
  }
  // BlockList.check builds a SocketAddress (native object) per call, and a session asks about the same client
  // several times (connect, MAIL, RCPT, end of DATA): answers are memoised per address string. The networks never
  // change for a matcher, so an answer never goes stale; the memo is dropped whole when full (bounded memory,
  // no LRU bookkeeping on the hit path).
  const memo = new Map<string, boolean>();
  const matches = (ip: string | undefined | null): boolean => {
    if (entries.length === 0 || !ip) return false;
    const known = memo.get(ip);
    if (known !== undefined) return known;
    const a = familyOf(ip);
    const r = a !== null && lists[a.type].check(a.address, a.type);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(ip, r);
    return r;
  };
  return {
    size: cidrs.length,
    matches,
    match(ip) {
      if (!matches(ip)) return null;
      const a = familyOf(ip)!;
      return entries.find((e) => e.type === a.type && e.list.check(a.address, a.type))?.text ?? null;
    },
  };
}
