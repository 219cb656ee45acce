import type { Logger } from '@mailgate/runtime';
import { ZoneMatcher } from './codes.js';
import type { DnsblConfig, ZoneConfig } from './config.js';
import { ipQuestion, questionName } from './names.js';
import type { DnsClient } from './resolver.js';

export interface ZoneHealthState {
  readonly zone: string;
  /** null = not probed yet (treated as up). */
  readonly up: boolean | null;
  readonly checkedAt?: string;
  /** Why the zone is down, e.g. "test point 127.0.0.2 not listed". */
  readonly reason?: string;
  /** Negative-caching TTL from the zone's SOA, when it has one. */
  readonly negativeTtlSec?: number;
}

/**
 * RFC 5782 §5 test points, per DNS zone: the "listed" point must be listed (a non-error 127/8 answer), the
 * "unlisted" point must not be. A zone failing either is disabled — it neither blocks nor passes everything
 * silently (a dead list that answers every query "listed", or a list refusing our resolver with error codes) —
 * and re-enabled when a later round passes.
 */
export class ZoneHealth {
  private readonly states = new Map<string, ZoneHealthState>();
  private readonly probes: { zone: ZoneConfig; matcher: ZoneMatcher }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private round: Promise<void> | undefined;

  constructor(
    private readonly cfg: DnsblConfig,
    private readonly dns: DnsClient,
    private readonly log: Logger,
    /** Called when a zone changes state (metrics). */
    private readonly onChange?: (s: ZoneHealthState) => void,
  ) {
    const seen = new Set<string>();
    for (const z of cfg.zones) {
      if (seen.has(z.name)) continue;
      seen.add(z.name);
      this.probes.push({ zone: z, matcher: new ZoneMatcher(undefined, z.errorCodes ?? cfg.errorCodes) });
      this.states.set(z.name, { zone: z.name, up: null });
    }
  }

  /** Up or not probed yet. */
  isUp(zone: string): boolean {
    return this.states.get(zone)?.up !== false;
  }

  get(zone: string): ZoneHealthState | undefined {
    return this.states.get(zone);
  }

  all(): ZoneHealthState[] {
    return [...this.states.values()];
  }

  /**
   * Periodic rounds every `health.intervalSec`; while a zone is down, every 30 s at most, so a zone disabled by
   * one lost packet comes back quickly.
   */
  start(): void {
    if (!this.cfg.health.enabled || this.probes.length === 0 || this.running) return;
    this.running = true;
    const schedule = () => {
      if (!this.running) return;
      const anyDown = this.all().some((s) => s.up === false);
      const sec = anyDown ? Math.min(30, this.cfg.health.intervalSec) : this.cfg.health.intervalSec;
      this.timer = setTimeout(() => void this.checkNow().finally(schedule), sec * 1000);
      this.timer.unref();
    };
    schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One round over all zones (concurrent rounds are merged). */
  checkNow(): Promise<void> {
    this.round ??= Promise.all(this.probes.map((p) => this.probe(p.zone, p.matcher)))
      .then(() => undefined)
      .finally(() => (this.round = undefined));
    return this.round;
  }

  private points(z: ZoneConfig): { listed: string | null; unlisted: string | null; shown: [string, string] } {
    const listed = z.testPoints.listed ?? (z.type === 'ip' ? '127.0.0.2' : 'test');
    const unlisted = z.testPoints.unlisted ?? (z.type === 'ip' ? '127.0.0.1' : 'invalid');
    const q = (p: string) => ipQuestion(p, z.name) ?? questionName(p, z.name);
    return { listed: q(listed), unlisted: q(unlisted), shown: [listed, unlisted] };
  }

  private async probe(z: ZoneConfig, matcher: ZoneMatcher): Promise<void> {
    const { listed, unlisted, shown } = this.points(z);
    const [pos, neg, negTtl] = await Promise.all([
      listed ? this.dns.lookup(listed, false) : undefined,
      unlisted ? this.dns.lookup(unlisted, false) : undefined,
      this.dns.negativeTtl(z.name),
    ]);
    let reason: string | undefined;
    if (pos) {
      if (pos.kind === 'fail') reason = `test point ${shown[0]}: ${pos.timeout ? 'timeout' : pos.error}`;
      else if (pos.kind === 'nx') reason = `test point ${shown[0]} is not listed`;
      else {
        const c = matcher.classify(pos.addrs);
        if (c.listed.length === 0)
          reason = `test point ${shown[0]} answered error code(s) ${c.errors.join(',')} (list refuses or rate-limits this resolver?)`;
      }
    }
    if (!reason && neg) {
      if (neg.kind === 'fail') reason = `test point ${shown[1]}: ${neg.timeout ? 'timeout' : neg.error}`;
      else if (neg.kind === 'answer')
        reason = `test point ${shown[1]} is listed (${neg.addrs.join(',')}): the list answers everything`;
    }
    const prev = this.states.get(z.name);
    const next: ZoneHealthState = {
      zone: z.name,
      up: reason === undefined,
      checkedAt: new Date().toISOString(),
      ...(reason ? { reason } : {}),
      ...(negTtl !== undefined ? { negativeTtlSec: negTtl } : {}),
    };
    this.states.set(z.name, next);
    if (prev?.up !== next.up) {
      if (next.up) this.log.info({ zone: z.name }, 'dnsbl zone healthy: enabled');
      else this.log.warn({ zone: z.name, reason }, 'dnsbl zone failed its health check: disabled until healthy');
      this.onChange?.(next);
    }
  }
}
