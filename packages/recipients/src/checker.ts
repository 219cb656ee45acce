import type { Redis } from 'ioredis';
import { CalloutSource } from './callout.js';
import type { RecipientsConfig } from './config.js';
import { LdapSource } from './ldap.js';
import { SourceUnavailableError, type RecipientQuery, type RecipientSource } from './source.js';
import { StaticSource } from './static.js';

/**
 * `checkRecipient()`: does this recipient exist in its (accepted) domain? The answer is a typed decision that
 * carries its SMTP reply, so ingress only relays it:
 *
 *   accept       the address is known to a source (or the domain is not checked at all)
 *   unknown      every source of the domain said no          → 550 5.1.1 <addr>: recipient unknown
 *   unavailable  no source said yes and one could not answer → 451 4.4.3 (fail closed), or accept with failOpen
 *
 * Answers of LDAP and callout sources are cached in Redis (`rcpt:<source>:<address>` = 1|0) with the configured
 * positive/negative TTLs, so every replica shares them and a directory outage is bridged for cached recipients.
 */

export type RecipientDecision =
  | {
      readonly action: 'accept';
      /** Source that knew it; '' when the domain is not checked; 'fail-open' when accepted without an answer. */
      readonly source: string;
      readonly cached: boolean;
    }
  | {
      readonly action: 'unknown' | 'unavailable';
      readonly code: number;
      readonly status: string;
      /** Reply text after the status, e.g. `<a@b>: recipient unknown`. */
      readonly message: string;
      readonly cached: boolean;
      readonly error?: string;
    };

export interface CheckerStats {
  cacheHits: number;
  cacheMisses: number;
  lookups: Record<string, number>;
  unknown: number;
  unavailable: number;
}

interface DomainRule {
  readonly exact: string | null;
  /** `.example.test` for `*.example.test`. */
  readonly suffix: string | null;
  readonly sources: readonly RecipientSource[];
  readonly separator: string;
}

export interface RecipientCheckerOptions {
  readonly redis?: Redis | null;
  /** EHLO name for callouts. */
  readonly hostname: string;
  readonly onError?: (err: Error) => void;
}

export class RecipientChecker {
  readonly stats: CheckerStats = { cacheHits: 0, cacheMisses: 0, lookups: {}, unknown: 0, unavailable: 0 };
  private readonly sources = new Map<string, RecipientSource>();
  private readonly rules: DomainRule[] = [];

  constructor(
    private readonly cfg: RecipientsConfig,
    private readonly opts: RecipientCheckerOptions,
  ) {
    for (const [name, s] of Object.entries(cfg.sources)) {
      this.sources.set(
        name,
        s.type === 'ldap'
          ? new LdapSource(name, s)
          : s.type === 'callout'
            ? new CalloutSource(name, s, opts.hostname, opts.redis)
            : new StaticSource(name, s),
      );
    }
    for (const d of cfg.domains) {
      const dom = d.domain.toLowerCase().replace(/\.$/, '');
      const wild = dom.startsWith('*.');
      this.rules.push({
        exact: wild ? null : dom,
        suffix: wild ? dom.slice(1) : null,
        sources: d.sources.map((n) => this.sources.get(n)!),
        separator: d.subaddressSeparator,
      });
    }
  }

  /** True when some domain has recipient checking configured. */
  get enabled(): boolean {
    return this.rules.length > 0;
  }

  private ruleFor(domain: string): DomainRule | undefined {
    return (
      this.rules.find((r) => r.exact === domain) ??
      this.rules.find((r) => r.suffix !== null && domain.endsWith(r.suffix))
    );
  }

  /** The lookup key: lower-cased, `user+tag` → `user` (the separator of the domain's rule). */
  static query(address: string, separator: string): RecipientQuery {
    const a = address.toLowerCase();
    const at = a.lastIndexOf('@');
    let local = a.slice(0, at);
    const domain = a.slice(at + 1);
    if (separator) {
      const i = local.indexOf(separator);
      // `+tag` alone (empty base) is looked up as written.
      if (i > 0) local = local.slice(0, i);
    }
    return { address: `${local}@${domain}`, local, domain };
  }

  private async cached(source: RecipientSource, q: RecipientQuery): Promise<'found' | 'unknown' | null> {
    if (!this.opts.redis || !source.cacheable) return null;
    try {
      const v = await this.opts.redis.get(`rcpt:${source.name}:${q.address}`);
      return v === '1' ? 'found' : v === '0' ? 'unknown' : null;
    } catch (err) {
      this.opts.onError?.(err as Error);
      return null; // the cache is an optimisation: without it, ask the source
    }
  }

  private remember(source: RecipientSource, q: RecipientQuery, found: boolean): void {
    const ttl = found ? this.cfg.cache.positiveTtlSeconds : this.cfg.cache.negativeTtlSeconds;
    if (!this.opts.redis || !source.cacheable || ttl <= 0) return;
    this.opts.redis
      .set(`rcpt:${source.name}:${q.address}`, found ? '1' : '0', 'EX', ttl)
      .catch((err: Error) => this.opts.onError?.(err));
  }

  /** Decide one recipient (an address in an accepted domain, already syntax- and relay-checked). */
  async check(address: string): Promise<RecipientDecision> {
    const at = address.lastIndexOf('@');
    const rule = at > 0 ? this.ruleFor(address.slice(at + 1).toLowerCase()) : undefined;
    if (!rule) return { action: 'accept', source: '', cached: false };
    const q = RecipientChecker.query(address, rule.separator);
    let allCached = true;
    const errors: string[] = [];
    for (const source of rule.sources) {
      let answer = await this.cached(source, q);
      if (answer !== null) this.stats.cacheHits++;
      else {
        if (source.cacheable) {
          this.stats.cacheMisses++;
          allCached = false;
        }
        this.stats.lookups[source.name] = (this.stats.lookups[source.name] ?? 0) + 1;
        try {
          answer = await source.lookup(q);
        } catch (err) {
          errors.push(
            err instanceof SourceUnavailableError ? err.message : `${source.name}: ${(err as Error).message}`,
          );
          continue;
        }
        this.remember(source, q, answer === 'found');
      }
      if (answer === 'found') return { action: 'accept', source: source.name, cached: allCached && source.cacheable };
    }
    if (errors.length > 0) {
      this.stats.unavailable++;
      if (this.cfg.failOpen) return { action: 'accept', source: 'fail-open', cached: false };
      return {
        action: 'unavailable',
        code: 451,
        status: '4.4.3',
        message: `<${address}>: recipient verification unavailable, try again later`,
        cached: false,
        error: errors.join('; '),
      };
    }
    this.stats.unknown++;
    return {
      action: 'unknown',
      code: 550,
      status: '5.1.1',
      message: `<${address}>: recipient unknown`,
      cached: allCached,
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.close().catch(() => undefined)));
  }
}

/** One-call form for tools and tests. */
export function checkRecipient(checker: RecipientChecker, address: string): Promise<RecipientDecision> {
  return checker.check(address);
}
