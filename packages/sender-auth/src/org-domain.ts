import { getDomain } from 'tldts';

/**
 * Organisational domain (RFC 7489 §3.2) from the Public Suffix List, ICANN and private sections, as mailauth
 * computes it (same options), so our alignment and mailauth's agree. The list is the one embedded in `tldts`;
 * the root package.json pins it to a current release (mailauth 4.13 alone would bring a May 2026 copy).
 */
const TLDTS_OPTS = { allowIcannDomains: true, allowPrivateDomains: true } as const;

export function orgDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, '');
  return getDomain(d, TLDTS_OPTS) ?? d;
}

/** DMARC identifier alignment: strict = same domain; relaxed = same organisational domain. */
export function aligned(fromDomain: string, other: string, mode: 'r' | 's'): boolean {
  const a = fromDomain.toLowerCase().replace(/\.$/, '');
  const b = other.toLowerCase().replace(/\.$/, '');
  if (mode === 's') return a === b;
  return orgDomain(a) === orgDomain(b);
}

/** Suffix match: example.com covers example.com and any subdomain. */
export function domainMatches(domain: string, patterns: readonly string[]): string | undefined {
  const d = domain.toLowerCase().replace(/\.$/, '');
  return patterns.find((p) => d === p || d.endsWith(`.${p}`));
}
