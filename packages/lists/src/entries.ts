import net from 'node:net';
import { normalizeIp, parseCidr } from '@mailgate/runtime';

/**
 * The list entries and how a value is matched. Pure functions: the Redis store and the live snapshot build on them.
 *
 *   ip-allow      client IP or CIDR (IPv4/IPv6) that skips the connection-time DNSBL check and is never blocked
 *   ip-block      client IP or CIDR refused at connect with 554 5.7.1
 *   sender-block  envelope sender refused at MAIL FROM with 550 5.7.1:
 *                   `user@example.com`   exactly that address
 *                   `*@example.com`      any address in example.com (also written `@example.com`)
 *                   `*@*.example.com`    any address in a subdomain of example.com (not example.com itself)
 *
 * Precedence (docs/configuration.md "ingress.lists"): ip-allow beats ip-block; neither applies to trusted networks;
 * the null sender `<>` is never matched by sender-block (bounces must stay deliverable).
 */

export const LIST_KINDS = ['ip-allow', 'ip-block', 'sender-block'] as const;
export type ListKind = (typeof LIST_KINDS)[number];

export interface ListEntry {
  readonly kind: ListKind;
  /** Normalised value: an IP/CIDR (lower-case, with prefix) or a sender pattern (lower-case). */
  readonly value: string;
  readonly reason: string;
  readonly createdBy: string;
  readonly createdAt: string;
  /** ISO time after which the entry no longer applies; null = permanent. */
  readonly expiresAt: string | null;
  /** 'redis' = added live (API/CLI/console), 'config' = seeded from ingress.lists.seed (read-only). */
  readonly source: 'redis' | 'config';
}

export class ListEntryError extends Error {
  /** HTTP status for the admin API. */
  readonly http = 400;
}

export const isListKind = (k: unknown): k is ListKind =>
  typeof k === 'string' && (LIST_KINDS as readonly string[]).includes(k);

/** `a.b.c.d[/n]` or `v6[/n]` → canonical `address/prefix`; null when invalid (runtime's parser, the workspace's one). */
export function parseNetwork(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const n = parseCidr(value);
  return n && { address: n.address, prefix: n.prefix, family: n.type };
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const isDomain = (d: string) => d.length <= 253 && d.split('.').length >= 1 && d.split('.').every((l) => LABEL.test(l));

/** Validate and normalise a value for its list; throws ListEntryError with a message fit for an API answer. */
export function normalizeValue(kind: ListKind, raw: string): string {
  const value = String(raw ?? '').trim();
  if (kind === 'ip-allow' || kind === 'ip-block') {
    const n = parseNetwork(value);
    if (!n) throw new ListEntryError(`${kind}: expected an IP address or CIDR, e.g. 192.0.2.7 or 2001:db8::/32`);
    return `${n.address}/${n.prefix}`;
  }
  const v = value.toLowerCase();
  const at = v.lastIndexOf('@');
  if (at < 0) throw new ListEntryError('sender-block: expected user@domain, *@domain or *@*.domain');
  const local = v.slice(0, at);
  let domain = v.slice(at + 1);
  const sub = domain.startsWith('*.');
  if (sub) domain = domain.slice(2);
  if (!isDomain(domain)) throw new ListEntryError(`sender-block: ${JSON.stringify(domain)} is not a domain name`);
  if (local === '' || local === '*') return `*@${sub ? '*.' : ''}${domain}`;
  if (sub) throw new ListEntryError('sender-block: a subdomain pattern must be *@*.domain');
  if (local.length > 64 || /[\s<>]/.test(local)) throw new ListEntryError('sender-block: bad local part');
  return `${local}@${domain}`;
}

export const isExpired = (e: ListEntry, now = Date.now()): boolean =>
  e.expiresAt !== null && Date.parse(e.expiresAt) <= now;

export interface IpMatch {
  /** 'allow' when an ip-allow entry matches (it wins over ip-block), 'block', or 'none'. */
  readonly action: 'allow' | 'block' | 'none';
  readonly entry?: ListEntry;
}

export interface SenderMatch {
  readonly action: 'block' | 'none';
  readonly entry?: ListEntry;
}

/**
 * An immutable, indexed view of the entries. Expiry is checked at match time, so an entry stops applying at its
 * expiry on every replica without waiting for a reload.
 */
export class ListSnapshot {
  private readonly ipAllow: { entry: ListEntry; list: net.BlockList }[] = [];
  private readonly ipBlock: { entry: ListEntry; list: net.BlockList }[] = [];
  private readonly senders = new Map<string, ListEntry>();

  constructor(
    readonly entries: readonly ListEntry[],
    readonly version: number,
  ) {
    for (const e of entries) {
      if (e.kind === 'sender-block') {
        this.senders.set(e.value, e);
        continue;
      }
      const n = parseNetwork(e.value);
      if (!n) continue; // validated on write; a hand-edited bad entry is ignored, not a crash
      const list = new net.BlockList();
      list.addSubnet(n.address, n.prefix, n.family);
      (e.kind === 'ip-allow' ? this.ipAllow : this.ipBlock).push({ entry: e, list });
    }
  }

  checkIp(ip: string, now = Date.now()): IpMatch {
    const n = normalizeIp(ip);
    const v = net.isIP(n);
    if (v === 0) return { action: 'none' };
    const fam = v === 4 ? 'ipv4' : 'ipv6';
    for (const a of this.ipAllow)
      if (!isExpired(a.entry, now) && a.list.check(n, fam)) return { action: 'allow', entry: a.entry };
    for (const b of this.ipBlock)
      if (!isExpired(b.entry, now) && b.list.check(n, fam)) return { action: 'block', entry: b.entry };
    return { action: 'none' };
  }

  checkSender(address: string, now = Date.now()): SenderMatch {
    const a = address.trim().toLowerCase();
    const at = a.lastIndexOf('@');
    if (!a || at < 0) return { action: 'none' };
    const domain = a.slice(at + 1);
    const hit = (key: string): SenderMatch | null => {
      const e = this.senders.get(key);
      return e && !isExpired(e, now) ? { action: 'block', entry: e } : null;
    };
    const exact = hit(a) ?? hit(`*@${domain}`);
    if (exact) return exact;
    // *@*.parent for every proper parent of the sender's domain
    const labels = domain.split('.');
    for (let i = 1; i < labels.length; i++) {
      const m = hit(`*@*.${labels.slice(i).join('.')}`);
      if (m) return m;
    }
    return { action: 'none' };
  }
}
