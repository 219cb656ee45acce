import type { Redis } from 'ioredis';
import type { Logger } from '@mailgate/runtime';
import { DnsblChecker, type CheckResult, type ZoneResult } from './checker.js';
import type { DnsblConfig } from './config.js';
import { normalizeIp } from './ip.js';

/** What ingress-smtp asks when a client connects. */
export interface ConnectFilter {
  check(ip: string): Promise<{ action: 'reject' | 'pass'; zone?: string; text?: string; score: number }>;
  close(): Promise<void>;
}

/** The connect filter plus helpers ingress may use (recipient exceptions, readiness). */
export interface DnsblConnectFilter extends ConnectFilter {
  /**
   * True for recipients in `atConnect.exceptions` (`postmaster@` any domain, or a full address). When the list is
   * not empty, ingress should answer the 554 at RCPT TO for the other recipients rather than at connect, so a
   * listed sender can still reach postmaster@ about its listing (the Exchange behaviour).
   */
  isException(rcpt: string): boolean;
  readonly exceptions: readonly string[];
  /** True when no zone is configured or at least one passes its health check. */
  ready(): boolean;
  readonly checker: DnsblChecker;
}

/** The zone reported in the reply: the listed (counted) one with the largest weight. */
export function namingZone(r: CheckResult): ZoneResult | undefined {
  return r.zones
    .filter((z) => z.status === 'listed' && !z.informational && z.weight > 0)
    .sort((a, b) => b.weight - a.weight)[0];
}

/** Fills {ip} {zone} {txt} {score}; the result is one line of printable text (safe in an SMTP reply). */
export function renderMessage(template: string, v: { ip: string; zone: string; txt?: string; score: number }): string {
  const s = template
    .replace(/\{ip\}/g, v.ip)
    .replace(/\{zone\}/g, v.zone)
    .replace(/\{txt\}/g, v.txt ?? '')
    .replace(/\{score\}/g, String(v.score));
  return s
    .replace(/[^\x20-\x7e]/g, ' ')
    .replace(/\s+/g, ' ')
    .replace(/[\s;:,-]+$/, '')
    .trim()
    .slice(0, 400);
}

export function isRecipientException(exceptions: readonly string[], rcpt: string): boolean {
  const r = rcpt.trim().replace(/^<|>$/g, '').toLowerCase();
  const at = r.lastIndexOf('@');
  if (at <= 0) return false;
  const local = r.slice(0, at + 1);
  return exceptions.some((e) => {
    const x = e.toLowerCase();
    return x.endsWith('@') ? local === x : r === x;
  });
}

/**
 * The at-connect check (postscreen / Exchange connection filtering): the client IP against the `ip` zones,
 * cache first. Only `reject` and `pass`: a DNS timeout here passes (the dnsbl-check stage asks again and applies
 * the zone's onTimeout policy before anything is delivered), and the quarantine band is the stage's business.
 */
export function createConnectFilter(cfg: DnsblConfig, deps: { redis?: Redis; log: Logger }): DnsblConnectFilter {
  const checker = new DnsblChecker(cfg, deps);
  const started = checker.start().catch((err) => deps.log.warn({ err }, 'dnsbl health check failed to start'));
  const exceptions = cfg.atConnect.exceptions;
  return {
    checker,
    exceptions,
    isException: (rcpt) => isRecipientException(exceptions, rcpt),
    ready: () => checker.ready(),
    async check(ip) {
      const n = normalizeIp(ip);
      if (!cfg.atConnect.enabled || !checker.hasZoneType('ip') || n === null || checker.isSkippedIp(n)) {
        return { action: 'pass', score: 0 };
      }
      const r = await checker.check([{ kind: 'ip', value: n, source: 'client' }], { types: ['ip'] });
      if (r.decision !== 'reject') return { action: 'pass', score: r.score };
      const z = namingZone(r);
      const zone = z?.zone ?? 'DNS block lists';
      const txt = z?.hits?.[0]?.txt;
      return {
        action: 'reject',
        zone,
        text: renderMessage(cfg.atConnect.message, { ip: n, zone, score: r.score, ...(txt ? { txt } : {}) }),
        score: r.score,
      };
    },
    async close() {
      await started;
      await checker.close();
    },
  };
}
