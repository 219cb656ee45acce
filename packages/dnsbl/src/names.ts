import { domainToASCII } from 'node:url';
import { normalizeIp, reverseIp } from './ip.js';

/**
 * Turning facts (an IP, a HELO name, a sender domain, a URL host) into DNS question names.
 */

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** Lower-case ASCII (punycode) domain with at least one dot, or null (bare words, IP literals, junk). */
export function normalizeDomain(input: string): string | null {
  let s = input.trim().replace(/\.$/, '');
  if (!s || s.startsWith('[') || normalizeIp(s) !== null) return null;
  s = domainToASCII(s.toLowerCase());
  if (!s || s.length > 253) return null;
  const labels = s.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return null;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return null;
  return s;
}

/** The domain part of an address (`user@Example.COM` → `example.com`); null for <> and local names. */
export function addressDomain(address: string): string | null {
  const at = address.lastIndexOf('@');
  return at === -1 ? null : normalizeDomain(address.slice(at + 1));
}

/**
 * Names to query for a URL host in a URI list: the host itself and its last three and two labels (the
 * registered domain for most TLDs and for two-level public suffixes like co.uk), without a suffix list.
 */
export function uriCandidates(host: string): string[] {
  const labels = host.split('.');
  const out = new Set<string>([host]);
  if (labels.length > 3) out.add(labels.slice(-3).join('.'));
  if (labels.length > 2) out.add(labels.slice(-2).join('.'));
  return [...out];
}

/** `query.zone` if it is a legal DNS name (≤ 253 octets), else null. */
export function questionName(query: string, zone: string): string | null {
  const n = `${query}.${zone}`;
  return n.length <= 253 ? n : null;
}

export function ipQuestion(ip: string, zone: string): string | null {
  const n = normalizeIp(ip);
  return n === null ? null : questionName(reverseIp(n), zone);
}
