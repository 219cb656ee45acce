// One file (~350 lines): one class, the check of one message against every zone (cache, de-duplicated queries,
// zone health, scoring); its steps share the per-check state.
import net from 'node:net';
import { metrics, type ObservableResult } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { Logger } from '@mailgate/runtime';
import {
  MemoryAnswerCache,
  NoCache,
  RedisAnswerCache,
  TieredAnswerCache,
  FRONT_TTL_SEC,
  type AnswerCache,
  type CachedAnswer,
} from './cache.js';
import { ZoneMatcher } from './codes.js';
import type { DnsblConfig, ZoneConfig, ZoneType } from './config.js';
import { ZoneHealth, type ZoneHealthState } from './health.js';
import { CidrList, normalizeIp } from './ip.js';
import { ipQuestion, normalizeDomain, questionName, uriCandidates } from './names.js';
import { DnsClient, type RawAnswer } from './resolver.js';

/** Something to look up: an IP (client, Received origin), a domain (HELO, sender) or a URL host (body). */
export interface CheckTarget {
  readonly kind: 'ip' | 'domain' | 'uri';
  readonly value: string;
  /** Where it came from, for details: 'client', 'received', 'helo', 'mail-from', 'body-url'. */
  readonly source: string;
}

/** One zone entry's answer for a message or connection. */
export interface ZoneResult {
  readonly zone: string;
  /** The DNS zone (label may differ). */
  readonly name: string;
  readonly type: ZoneType;
  readonly weight: number;
  readonly informational: boolean;
  /**
   * listed     — a target matched (counted unless informational)
   * not-listed — every target answered NXDOMAIN or a code this entry does not count
   * error      — the list answered only error codes (refused / rate limited): never a listing
   * timeout    — no answer (timeout, SERVFAIL, unreachable): handled per `onTimeout`
   * disabled   — the zone failed its health check and was not queried
   * skipped    — nothing of this zone's type to look up
   */
  readonly status: 'listed' | 'not-listed' | 'error' | 'timeout' | 'disabled' | 'skipped';
  readonly hits?: { target: string; source: string; codes: string[]; txt?: string }[];
  readonly errors?: { target: string; codes?: string[]; error?: string }[];
  /** The zone's onTimeout was 'tempfail' and it could not be asked. */
  readonly undecided?: boolean;
}

export type Decision = 'pass' | 'quarantine' | 'reject' | 'tempfail';

export interface CheckResult {
  readonly score: number;
  /** By the thresholds; 'tempfail' when a zone with onTimeout 'tempfail' did not answer and its answer could change the decision. */
  readonly decision: Decision;
  readonly zones: ZoneResult[];
  readonly stats: { readonly questions: number; readonly cacheHits: number; readonly dnsLookups: number };
}

export interface DnsblCheckerDeps {
  readonly redis?: Redis | undefined;
  readonly log: Logger;
}

interface Entry {
  readonly cfg: ZoneConfig;
  readonly label: string;
  readonly matcher: ZoneMatcher;
}

type Answer = RawAnswer & { cached?: boolean };

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * Lookups of IPs, domains and URL hosts against the configured zones, all questions of one check in parallel,
 * answers cached (Redis, one MGET per check), scored by weight, with RFC 5782 zone health. Used by the
 * dnsbl-check stage and (through createConnectFilter) by ingress.
 */
export class DnsblChecker {
  readonly dns: DnsClient;
  readonly health: ZoneHealth;
  private readonly entries: Entry[];
  private readonly cache: AnswerCache;
  private readonly skip: CidrList;
  private readonly inflight = new Map<string, Promise<Answer>>();
  private readonly log: Logger;
  private readonly metrics = metrics.getMeter('mailgate-dnsbl');
  private readonly lookups = this.metrics.createCounter('mailgate_dnsbl_lookups_total', {
    description: 'DNSBL questions by zone and result (listed, not-listed, error, timeout) and whether cached',
  });
  private readonly zoneUpGauge = this.metrics.createObservableGauge('mailgate_dnsbl_zone_up', {
    description: '1 when the zone passes its RFC 5782 health check, 0 when disabled',
  });
  private readonly observe = (r: ObservableResult) => {
    for (const s of this.health.all()) r.observe(s.up === false ? 0 : 1, { zone: s.zone });
  };
  private cacheHits = 0;

  constructor(
    readonly cfg: DnsblConfig,
    deps: DnsblCheckerDeps,
  ) {
    this.log = deps.log;
    this.dns = new DnsClient({ resolvers: cfg.resolvers, timeoutMs: cfg.timeoutMs });
    this.entries = cfg.zones.map((z) => ({
      cfg: z,
      label: z.label ?? z.name,
      matcher: new ZoneMatcher(z.match, z.errorCodes ?? cfg.errorCodes),
    }));
    this.cache = !cfg.cache.enabled
      ? new NoCache()
      : deps.redis
        ? // Shared by replicas and ingress through Redis; repeats within seconds answered in process (cache.ts).
          new TieredAnswerCache(
            new RedisAnswerCache(deps.redis, cfg.cache.keyPrefix, deps.log),
            cfg.cache.memoryEntries,
            // Never longer than the operator allows any answer to live (cache.maxTtlSec may be below 5 s).
            Math.min(FRONT_TTL_SEC, cfg.cache.maxTtlSec),
          )
        : new MemoryAnswerCache(cfg.cache.memoryEntries);
    this.skip = new CidrList(cfg.skipNetworks);
    this.health = new ZoneHealth(cfg, this.dns, deps.log);
    this.zoneUpGauge.addCallback(this.observe);
  }

  /** Runs a first health round (bounded by the DNS timeout) and starts the periodic ones. */
  async start(): Promise<void> {
    if (this.cfg.health.enabled) await this.health.checkNow();
    this.health.start();
  }

  async close(): Promise<void> {
    this.health.stop();
    this.zoneUpGauge.removeCallback(this.observe);
    this.dns.close();
  }

  /** Readiness: no zones configured, or at least one zone answers its test points (the resolver works). */
  ready(): boolean {
    const states = this.health.all();
    return states.length === 0 || states.some((s) => s.up !== false);
  }

  zoneStates(): ZoneHealthState[] {
    return this.health.all();
  }

  get hasZones(): boolean {
    return this.entries.length > 0;
  }

  hasZoneType(t: ZoneType): boolean {
    return this.entries.some((e) => e.cfg.type === t);
  }

  /** True when the IP is in `skipNetworks` (private, loopback…): never looked up. */
  isSkippedIp(ip: string): boolean {
    return this.skip.has(ip);
  }

  /** Stats since start: DNS questions sent and cache hits. */
  stats(): { dnsQueries: number; cacheHits: number } {
    return { dnsQueries: this.dns.queries, cacheHits: this.cacheHits };
  }

  /** Question names for one target in one zone. */
  private questions(e: Entry, t: CheckTarget): string[] {
    const z = e.cfg;
    if (t.kind === 'ip' || (t.kind === 'uri' && normalizeIp(t.value) !== null)) {
      if (z.type !== (t.kind === 'ip' ? 'ip' : 'uri')) return [];
      const ip = normalizeIp(t.value);
      if (ip === null || this.skip.has(ip) || (!z.ipv6 && net.isIPv6(ip))) return [];
      const q = ipQuestion(ip, z.name);
      return q ? [q] : [];
    }
    if (t.kind === 'domain') {
      if (z.type !== 'domain') return [];
      const d = normalizeDomain(t.value);
      const q = d ? questionName(d, z.name) : null;
      return q ? [q] : [];
    }
    if (z.type !== 'uri') return [];
    const host = normalizeDomain(t.value);
    if (!host) return [];
    return uriCandidates(host)
      .map((c) => questionName(c, z.name))
      .filter((q): q is string => q !== null);
  }

  /**
   * Looks the targets up in every zone of a matching type (optionally only `types`) and scores the answers.
   */
  async check(targets: readonly CheckTarget[], opts: { types?: readonly ZoneType[] } = {}): Promise<CheckResult> {
    const plan: { e: Entry; qs: { target: CheckTarget; q: string }[]; disabled: boolean }[] = [];
    const wanted = new Map<string, { zone: string; txt: boolean }>();
    for (const e of this.entries) {
      if (opts.types && !opts.types.includes(e.cfg.type)) continue;
      const disabled = !this.health.isUp(e.cfg.name);
      const qs: { target: CheckTarget; q: string }[] = [];
      if (!disabled) {
        for (const t of targets) for (const q of this.questions(e, t)) qs.push({ target: t, q });
        for (const { q } of qs) {
          const w = wanted.get(q);
          wanted.set(q, { zone: e.cfg.name, txt: (w?.txt ?? false) || e.cfg.txt });
        }
      }
      plan.push({ e, qs, disabled });
    }
    const before = this.dns.queries;
    const answers = await this.resolveMany(wanted);
    let cacheHits = 0;
    for (const a of answers.values()) if (a.cached) cacheHits++;

    const zones: ZoneResult[] = [];
    for (const { e, qs, disabled } of plan) zones.push(this.evaluate(e, qs, answers, disabled));
    const { score, decision } = this.decide(zones);
    return {
      score,
      decision,
      zones,
      stats: { questions: wanted.size, cacheHits, dnsLookups: this.dns.queries - before },
    };
  }

  private evaluate(
    e: Entry,
    qs: { target: CheckTarget; q: string }[],
    answers: Map<string, Answer>,
    disabled: boolean,
  ): ZoneResult {
    const base = {
      zone: e.label,
      name: e.cfg.name,
      type: e.cfg.type,
      weight: e.cfg.weight,
      informational: e.cfg.informational,
    };
    if (disabled) return { ...base, status: 'disabled' };
    if (qs.length === 0) return { ...base, status: 'skipped' };
    const hits: NonNullable<ZoneResult['hits']> = [];
    const errors: NonNullable<ZoneResult['errors']> = [];
    let failed = false;
    for (const { target, q } of qs) {
      const a = answers.get(q);
      if (!a || a.kind === 'nx') continue;
      if (a.kind === 'fail') {
        failed = true;
        errors.push({ target: target.value, error: a.timeout ? 'timeout' : a.error });
        continue;
      }
      const c = e.matcher.classify(a.addrs);
      if (c.listed.length > 0) {
        const dup = hits.find((h) => h.target === target.value);
        if (!dup)
          hits.push({ target: target.value, source: target.source, codes: c.listed, ...(a.txt ? { txt: a.txt } : {}) });
      }
      if (c.errors.length > 0) errors.push({ target: target.value, codes: c.errors });
    }
    const status: ZoneResult['status'] =
      hits.length > 0 ? 'listed' : failed ? 'timeout' : errors.length > 0 ? 'error' : 'not-listed';
    this.lookups.add(1, { zone: e.label, result: status });
    return {
      ...base,
      status,
      ...(hits.length ? { hits } : {}),
      ...(errors.length ? { errors } : {}),
      ...(status === 'timeout' && e.cfg.onTimeout === 'tempfail' && !e.cfg.informational ? { undecided: true } : {}),
    };
  }

  /** Score by the thresholds; an undecided zone only forces tempfail when its weight could change the outcome. */
  decide(zones: readonly ZoneResult[]): { score: number; decision: Decision } {
    let score = 0;
    let lo = 0;
    let hi = 0;
    for (const z of zones) {
      if (z.informational) continue;
      if (z.status === 'listed') score += z.weight;
      else if (z.undecided) {
        lo += Math.min(0, z.weight);
        hi += Math.max(0, z.weight);
      }
    }
    score = Math.round(score * 1000) / 1000;
    const d = this.byThreshold(score);
    if ((lo !== 0 || hi !== 0) && (this.byThreshold(score + lo) !== d || this.byThreshold(score + hi) !== d)) {
      return { score, decision: 'tempfail' };
    }
    return { score, decision: d };
  }

  private byThreshold(score: number): Exclude<Decision, 'tempfail'> {
    const t = this.cfg.thresholds;
    if (score >= t.reject) return 'reject';
    if (t.quarantine !== null && score >= t.quarantine) return 'quarantine';
    return 'pass';
  }

  /** Cache first (one MGET), then DNS for the misses in parallel; one in-flight DNS question per name. */
  private async resolveMany(wanted: Map<string, { zone: string; txt: boolean }>): Promise<Map<string, Answer>> {
    const out = new Map<string, Answer>();
    if (wanted.size === 0) return out;
    const names = [...wanted.keys()];
    const cached = await this.cache.getMany(names);
    const misses: string[] = [];
    names.forEach((n, i) => {
      const c = cached[i];
      if (c) {
        this.cacheHits++;
        out.set(n, fromCache(c));
      } else misses.push(n);
    });
    if (misses.length === 0) return out;
    const toStore: { name: string; value: CachedAnswer; ttlSec: number }[] = [];
    await Promise.all(
      misses.map(async (n) => {
        const w = wanted.get(n)!;
        let p = this.inflight.get(n);
        const leader = !p;
        if (!p) {
          p = this.dns.lookup(n, w.txt);
          this.inflight.set(n, p);
          void p.finally(() => this.inflight.delete(n));
        }
        const a = await p;
        out.set(n, a);
        if (leader) {
          const entry = this.toCacheEntry(n, w.zone, a);
          if (entry) toStore.push(entry);
        }
      }),
    );
    await this.cache.setMany(toStore);
    return out;
  }

  private toCacheEntry(
    name: string,
    zone: string,
    a: RawAnswer,
  ): { name: string; value: CachedAnswer; ttlSec: number } | null {
    const { minTtlSec, maxTtlSec, negativeTtlSec } = this.cfg.cache;
    if (a.kind === 'fail') return null; // never cache "could not ask"
    if (a.kind === 'nx') {
      const ttl = this.health.get(zone)?.negativeTtlSec ?? negativeTtlSec;
      return { name, value: {}, ttlSec: clamp(ttl, minTtlSec, maxTtlSec) };
    }
    return {
      name,
      value: a.txt ? { a: a.addrs, txt: a.txt } : { a: a.addrs },
      ttlSec: clamp(a.ttl, minTtlSec, maxTtlSec),
    };
  }
}

function fromCache(c: CachedAnswer): Answer {
  if (!c.a || c.a.length === 0) return { kind: 'nx', cached: true };
  return c.txt
    ? { kind: 'answer', addrs: c.a, txt: c.txt, ttl: 0, cached: true }
    : { kind: 'answer', addrs: c.a, ttl: 0, cached: true };
}
