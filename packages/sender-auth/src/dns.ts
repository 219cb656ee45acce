import { promises as dns } from 'node:dns';
import { LazyResolver } from '@mailgate/dnsbl';

/**
 * The DNS side of sender authentication: a c-ares resolver pointed at the configured servers, wrapped as the
 * `resolver(name, rrtype)` function mailauth takes. Adds what mailauth does not have: a hard per-query deadline,
 * a small in-process answer cache with in-flight de-duplication, and a per-check record of DNS failures (so a
 * check whose library swallows DNS errors, like ARC, can still be reported as temperror).
 */

export interface AuthDnsOptions {
  /** 'system' or host[:port] list. Host names are resolved once, at first use. */
  readonly resolvers: 'system' | readonly string[];
  readonly timeoutMs: number;
  readonly tries: number;
  readonly cache: { readonly maxEntries: number; readonly ttlSec: number; readonly negativeTtlSec: number };
}

/** What mailauth calls: node:dns `resolve(name, rrtype)` semantics, errors with a c-ares `code`. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<never>;

/** Error codes that mean "the name has no such data" (a definite answer), not a failure. */
const NO_DATA = new Set(['ENOTFOUND', 'ENODATA']);
/** Definite answers about the question itself (bad name): not retryable, never temperror. */
const PERMANENT = new Set(['EBADNAME', 'EBADFAMILY', 'EBADQUERY', 'EFORMERR', 'ENOTIMP']);

export interface DnsFailure {
  readonly name: string;
  readonly type: string;
  /** c-ares code: ETIMEOUT, ESERVFAIL, EREFUSED, ECONNREFUSED… */
  readonly code: string;
}

/** A resolver bound to one check: counts its queries and remembers temporary failures. */
export interface TrackedResolver {
  readonly resolve: MailauthResolver;
  readonly failures: DnsFailure[];
  queries: number;
  cacheHits: number;
}

/** True for errors that are a DNS failure (temperror), not an answer. */
export function isTemporaryDnsError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  return !NO_DATA.has(code) && !PERMANENT.has(code);
}

type CacheEntry =
  | { readonly ok: true; readonly value: unknown; readonly expires: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly expires: number };

/**
 * The error a cached negative answer throws: what node:dns throws (message, `code`), without a stack trace.
 * Negative answers are common on the hot path (DMARC at the organizational domain, SPF includes, DKIM selectors
 * that do not exist), and capturing a stack on every cache hit made `resolve` a visible share of ingress CPU;
 * nobody reads the stack of an expected "no such record". A new object per hit, so a caller that annotates
 * the error cannot leak into the next one.
 */
function cachedNoData(message: string, code: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return Object.assign(new Error(message), { code });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

const SUPPORTED = new Set(['A', 'AAAA', 'TXT', 'MX', 'PTR', 'CNAME', 'NS']);

export class AuthDns {
  private readonly resolver: LazyResolver;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Questions sent to the resolvers (not cache hits), for stats and benchmarks. */
  queries = 0;
  cacheHits = 0;

  constructor(private readonly opts: AuthDnsOptions) {
    this.resolver = new LazyResolver(opts.resolvers, { timeout: opts.timeoutMs, tries: opts.tries });
  }

  private get(): Promise<dns.Resolver> {
    return this.resolver.get();
  }

  /** Hard deadline over c-ares (which may try several servers and retries): timeoutMs × tries, plus slack. */
  private deadline<T>(p: Promise<T>): Promise<T> {
    const ms = this.opts.timeoutMs * this.opts.tries + 50;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<T>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error(`no DNS answer within ${ms} ms`), { code: 'ETIMEOUT' })),
          ms,
        );
        timer.unref?.();
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** One question, through the cache. Throws node:dns-style errors (with `code`). */
  async resolve(name: string, rrtype: string, track?: TrackedResolver): Promise<unknown> {
    const type = rrtype.toUpperCase();
    const qname = name.replace(/\.$/, '').toLowerCase();
    const key = `${type} ${qname}`;
    if (track) track.queries++;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) {
      this.cacheHits++;
      if (track) track.cacheHits++;
      if (hit.ok) return hit.value;
      throw cachedNoData(hit.message, hit.code);
    }
    if (hit) this.cache.delete(key);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.query(qname, type).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    try {
      return await p;
    } catch (err) {
      if (track && isTemporaryDnsError(err)) {
        track.failures.push({ name: qname, type, code: String((err as { code?: string }).code) });
      }
      throw err;
    }
  }

  private async query(qname: string, type: string): Promise<unknown> {
    if (!SUPPORTED.has(type)) {
      throw Object.assign(new Error(`unsupported DNS type ${type}`), { code: 'ENOTIMP' });
    }
    const key = `${type} ${qname}`;
    const { maxEntries, ttlSec, negativeTtlSec } = this.opts.cache;
    try {
      const r = await this.get();
      this.queries++;
      const value = await this.deadline(r.resolve(qname, type as 'TXT'));
      if (maxEntries > 0) this.store(key, { ok: true, value, expires: Date.now() + ttlSec * 1000 });
      return value;
    } catch (e) {
      let err = e;
      let code = (err as { code?: unknown }).code;
      if (code === 'EBADNAME') {
        // c-ares refuses names it cannot put in a query (a label over 63 octets, a name over 253, characters such
        // as ':' or ' ' that SPF macros can produce). No such name can exist for us: answer "no such domain"
        // rather than a temperror that would hold mail forever for a permanent condition.
        code = 'ENOTFOUND';
        err = Object.assign(new Error(`${(e as Error).message} (unqueryable name)`), { code, hostname: qname });
      }
      if (maxEntries > 0 && typeof code === 'string' && NO_DATA.has(code)) {
        this.store(key, {
          ok: false,
          code,
          message: `${(err as Error).message} (cached)`,
          expires: Date.now() + negativeTtlSec * 1000,
        });
      }
      throw err;
    }
  }

  private store(key: string, e: CacheEntry): void {
    // Map keeps insertion order: evict the oldest when full.
    if (this.cache.size >= this.opts.cache.maxEntries && !this.cache.has(key)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, e);
  }

  /** A mailauth resolver bound to a fresh tracker (one per check). */
  track(): TrackedResolver {
    const t: TrackedResolver = {
      failures: [],
      queries: 0,
      cacheHits: 0,
      resolve: ((name: string, rrtype: string) => this.resolve(name, rrtype, t)) as MailauthResolver,
    };
    return t;
  }

  /** Forget cached answers (tests, benchmarks "cold" runs). */
  clearCache(): void {
    this.cache.clear();
  }

  close(): void {
    this.resolver.current?.cancel();
  }
}
