import { promises as dns } from 'node:dns';
import net from 'node:net';

/**
 * One DNS question's outcome, as the checker needs it. `fail` covers everything that is not an answer from the
 * list (timeout, SERVFAIL, REFUSED, unreachable resolver): the zone's `onTimeout` policy decides what it means.
 */
export type RawAnswer =
  | { readonly kind: 'answer'; readonly addrs: readonly string[]; readonly txt?: string; readonly ttl: number }
  | { readonly kind: 'nx'; readonly ttl?: number }
  | { readonly kind: 'fail'; readonly timeout: boolean; readonly error: string };

export interface DnsClientOptions {
  /** 'system' or host[:port] list. Host names are resolved once, at first use. */
  readonly resolvers: 'system' | readonly string[];
  readonly timeoutMs: number;
}

/** host, host:port, [v6]:port, v6 → c-ares server string. */
async function toServer(spec: string): Promise<string> {
  let host = spec;
  let port = 53;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (!net.isIPv6(spec)) {
    const i = spec.lastIndexOf(':');
    if (i !== -1) {
      host = spec.slice(0, i);
      port = Number(spec.slice(i + 1));
    }
  }
  if (!net.isIP(host)) host = (await dns.lookup(host)).address;
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A c-ares resolver for configured servers ('system': the machine's), made at first use and reused: host names
 * among the servers are resolved once, then. `current` is the resolver once made (to cancel its queries).
 */
export class LazyResolver {
  current: dns.Resolver | undefined;
  private init: Promise<dns.Resolver> | undefined;

  constructor(
    private readonly servers: 'system' | readonly string[],
    private readonly options: { readonly timeout: number; readonly tries: number },
  ) {}

  get(): Promise<dns.Resolver> {
    this.init ??= (async () => {
      const r = new dns.Resolver(this.options);
      if (this.servers !== 'system') r.setServers(await Promise.all(this.servers.map(toServer)));
      this.current = r;
      return r;
    })();
    return this.init;
  }
}

const NX_CODES = new Set(['ENOTFOUND', 'ENODATA', 'NOTFOUND', 'NODATA']);

/**
 * A thin wrapper over the c-ares resolver (node:dns): one try per query, a hard deadline on top of c-ares' own
 * timeout (with several resolvers c-ares may move on to the next one, the deadline still holds).
 */
export class DnsClient {
  private readonly resolver: LazyResolver;
  /** DNS questions sent (A and TXT), for stats and benchmarks. */
  queries = 0;

  constructor(private readonly opts: DnsClientOptions) {
    this.resolver = new LazyResolver(opts.resolvers, { timeout: opts.timeoutMs, tries: 1 });
  }

  private get(): Promise<dns.Resolver> {
    return this.resolver.get();
  }

  private deadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<T>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error(`no answer within ${this.opts.timeoutMs} ms`), { code: 'ETIMEOUT' })),
          this.opts.timeoutMs,
        );
        timer.unref?.();
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** A records with TTL; the TXT record too when `txt` and the name is listed. */
  async lookup(name: string, txt: boolean): Promise<RawAnswer> {
    try {
      const r = await this.get();
      this.queries++;
      const recs = await this.deadline(r.resolve4(name, { ttl: true }));
      if (recs.length === 0) return { kind: 'nx' };
      const addrs = recs.map((x) => x.address).sort();
      const ttl = Math.min(...recs.map((x) => x.ttl));
      if (!txt) return { kind: 'answer', addrs, ttl };
      let text: string | undefined;
      try {
        this.queries++;
        const t = await this.deadline(r.resolveTxt(name));
        text =
          t
            .map((chunks) => chunks.join(''))
            .join(' ')
            .slice(0, 300) || undefined;
      } catch {
        // The listing stands without its text.
      }
      return text === undefined ? { kind: 'answer', addrs, ttl } : { kind: 'answer', addrs, txt: text, ttl };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (NX_CODES.has(code)) return { kind: 'nx' };
      return { kind: 'fail', timeout: code === 'ETIMEOUT', error: code || (err as Error).message };
    }
  }

  /** SOA minimum of a zone (RFC 2308 negative-caching TTL), or undefined when the zone has no SOA. */
  async negativeTtl(zone: string): Promise<number | undefined> {
    try {
      const r = await this.get();
      this.queries++;
      const soa = await this.deadline(r.resolveSoa(zone));
      return soa.minttl > 0 ? soa.minttl : undefined;
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.resolver.current?.cancel();
  }
}
