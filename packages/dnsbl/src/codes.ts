import net from 'node:net';
import { ipv4ToInt } from './ip.js';

/**
 * Return-code matching. A DNSBL answers A records in 127.0.0.0/8; which of them mean "listed" differs per list
 * (Spamhaus ZEN: .2 SBL, .3 CSS, .4–.7 XBL, .10–.11 PBL; SURBL multi: a bitmask in the last octet). A code spec
 * is one of:
 *   `127.0.0.2`                 exact
 *   `127.0.0.4-127.0.0.7`       inclusive range
 *   `127.0.0.8/29`              CIDR
 */
export type CodeRange = readonly [lo: number, hi: number];

export function parseCodeSpec(spec: string): CodeRange {
  const s = spec.trim();
  const dash = s.split('-');
  if (dash.length === 2) {
    const [a, b] = dash.map((x) => x.trim()) as [string, string];
    if (!net.isIPv4(a) || !net.isIPv4(b)) throw new Error(`bad return code range ${spec}`);
    const lo = ipv4ToInt(a);
    const hi = ipv4ToInt(b);
    if (hi < lo) throw new Error(`return code range ${spec} is reversed`);
    return [lo, hi];
  }
  const [addr, len] = s.split('/');
  if (!addr || !net.isIPv4(addr))
    throw new Error(`bad return code ${spec} (expected a.b.c.d, a.b.c.d-e.f.g.h or a.b.c.d/n)`);
  const base = ipv4ToInt(addr);
  if (len === undefined) return [base, base];
  const bits = Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`bad prefix length in ${spec}`);
  const size = 2 ** (32 - bits);
  const lo = Math.floor(base / size) * size;
  return [lo, lo + size - 1];
}

export function isValidCodeSpec(spec: string): boolean {
  try {
    parseCodeSpec(spec);
    return true;
  } catch {
    return false;
  }
}

export class CodeSet {
  private readonly ranges: CodeRange[];
  constructor(specs: readonly string[]) {
    this.ranges = specs.map(parseCodeSpec);
  }
  has(code: string): boolean {
    if (!net.isIPv4(code)) return false;
    const v = ipv4ToInt(code);
    return this.ranges.some(([lo, hi]) => v >= lo && v <= hi);
  }
  get empty(): boolean {
    return this.ranges.length === 0;
  }
}

/** What one zone entry counts as a listing. */
export class ZoneMatcher {
  private readonly codes: CodeSet;
  private readonly errors: CodeSet;
  constructor(
    match: { codes?: readonly string[] | undefined; bitmask?: number | undefined } | undefined,
    errorCodes: readonly string[],
  ) {
    this.codes = new CodeSet(match?.codes ?? []);
    this.bitmask = match?.bitmask;
    this.errors = new CodeSet(errorCodes);
  }
  private readonly bitmask: number | undefined;

  /**
   * Splits an answer into listing codes and error codes. Anything outside 127.0.0.0/8 is an error too
   * (RFC 5782 §2.3: answers are in 127/8; a wildcarding resolver or a hijacked NXDOMAIN answers elsewhere).
   * With neither `codes` nor `bitmask` configured, every non-error 127/8 code counts.
   */
  classify(addrs: readonly string[]): { listed: string[]; errors: string[]; ignored: string[] } {
    const listed: string[] = [];
    const errors: string[] = [];
    const ignored: string[] = [];
    for (const a of addrs) {
      if (!net.isIPv4(a) || !a.startsWith('127.') || this.errors.has(a)) {
        errors.push(a);
        continue;
      }
      const anyRule = !this.codes.empty || this.bitmask !== undefined;
      const byCode = !this.codes.empty && this.codes.has(a);
      const byMask = this.bitmask !== undefined && (ipv4ToInt(a) & 0xff & this.bitmask) !== 0;
      if (!anyRule || byCode || byMask) listed.push(a);
      else ignored.push(a);
    }
    return { listed, errors, ignored };
  }
}
