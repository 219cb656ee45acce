import { promises as dns, type MxRecord } from 'node:dns';
import net from 'node:net';
import { orderByPriority, type Route } from './routing.js';

/** One address to try, with the host name it came from (Remote-MTA, TLS SNI). */
export interface Target {
  readonly host: string;
  readonly address: string;
  readonly port: number;
}

export type Resolution =
  | { readonly kind: 'ok'; readonly targets: readonly Target[] }
  | { readonly kind: 'perm'; readonly reply: string }
  | { readonly kind: 'temp'; readonly reply: string };

export interface ResolverOptions {
  readonly servers: readonly string[];
  readonly timeoutMs: number;
  readonly tries: number;
  readonly ipv6: boolean;
  readonly mxPort: number;
}

/** NXDOMAIN / NODATA: the name is definitely not there. Everything else (SERVFAIL, timeout, refused) may pass. */
const isNotFound = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
};

const errText = (e: unknown): string => `${(e as NodeJS.ErrnoException).code ?? 'error'} ${(e as Error).message}`;

/**
 * Destination lookup per RFC 5321 §5.1: MX records by preference (random among equals), each MX host's A/AAAA
 * addresses in turn, implicit MX (the domain's own addresses) without MX records, null MX (RFC 7505) = permanent
 * failure, and DNS trouble (SERVFAIL, timeout) = temporary failure.
 */
export class DestinationResolver {
  private readonly resolver: dns.Resolver;

  constructor(private readonly opts: ResolverOptions) {
    this.resolver = new dns.Resolver({ timeout: opts.timeoutMs, tries: opts.tries });
    if (opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
  }

  async resolve(route: Route, random = Math.random): Promise<Resolution> {
    return route.type === 'mx' ? this.resolveMx(route.domain, random) : this.resolveHosts(route, random);
  }

  private async resolveHosts(route: Route, random: () => number): Promise<Resolution> {
    const targets: Target[] = [];
    let temp: string | undefined;
    for (const h of orderByPriority(route.hosts, random)) {
      if (net.isIP(h.host)) {
        targets.push({ host: h.host, address: h.host, port: h.port });
        continue;
      }
      const r = await this.addresses(h.host);
      if (r.kind === 'temp') temp = r.reply;
      else if (r.kind === 'ok') for (const a of r.addresses) targets.push({ host: h.host, address: a, port: h.port });
    }
    if (targets.length > 0) return { kind: 'ok', targets };
    // A smarthost that does not resolve is a configuration problem: keep the mail (temporary), never bounce it.
    return { kind: 'temp', reply: `451 4.4.3 smarthost lookup failed${temp ? `: ${temp}` : ''}` };
  }

  private async resolveMx(domain: string, random: () => number): Promise<Resolution> {
    if (!domain) return { kind: 'perm', reply: '550 5.1.3 recipient address has no domain' };
    let mx: MxRecord[];
    try {
      mx = await this.resolver.resolveMx(domain);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENODATA') mx = [];
      else if ((e as NodeJS.ErrnoException).code === 'ENOTFOUND') {
        return { kind: 'perm', reply: `550 5.1.2 domain ${domain} not found` };
      } else return { kind: 'temp', reply: `451 4.4.3 MX lookup for ${domain} failed: ${errText(e)}` };
    }
    const isNull = (x: MxRecord) => x.exchange === '' || x.exchange === '.';
    if (mx.some(isNull)) {
      // RFC 7505: a null MX says the domain accepts no mail at all.
      return { kind: 'perm', reply: `556 5.1.10 domain ${domain} does not accept mail (null MX)` };
    }
    const hosts =
      mx.length > 0
        ? orderByPriority(
            mx.map((m) => ({ host: m.exchange.replace(/\.$/, ''), priority: m.priority })),
            random,
          )
        : [{ host: domain, priority: 0 }]; // implicit MX (RFC 5321 §5.1)
    const targets: Target[] = [];
    let temp: string | undefined;
    for (const h of hosts) {
      const r = net.isIP(h.host) ? { kind: 'ok' as const, addresses: [h.host] } : await this.addresses(h.host);
      if (r.kind === 'temp') temp = r.reply;
      else if (r.kind === 'ok')
        for (const a of r.addresses) targets.push({ host: h.host, address: a, port: this.opts.mxPort });
    }
    if (targets.length > 0) return { kind: 'ok', targets };
    if (temp) return { kind: 'temp', reply: `451 4.4.3 address lookup failed: ${temp}` };
    return mx.length > 0
      ? { kind: 'perm', reply: `550 5.1.2 no address for the MX hosts of ${domain}` }
      : { kind: 'perm', reply: `550 5.1.2 domain ${domain} has no MX and no address` };
  }

  /** A and (optionally) AAAA of a host. Not found in both = 'none'; any lookup trouble without addresses = 'temp'. */
  private async addresses(
    host: string,
  ): Promise<{ kind: 'ok'; addresses: string[] } | { kind: 'none' } | { kind: 'temp'; reply: string }> {
    const lookups = [this.resolver.resolve4(host)];
    if (this.opts.ipv6) lookups.push(this.resolver.resolve6(host));
    const results = await Promise.allSettled(lookups);
    const addresses: string[] = [];
    let temp: string | undefined;
    for (const r of results) {
      if (r.status === 'fulfilled') addresses.push(...r.value);
      else if (!isNotFound(r.reason)) temp = `${host}: ${errText(r.reason)}`;
    }
    if (addresses.length > 0) return { kind: 'ok', addresses };
    return temp ? { kind: 'temp', reply: temp } : { kind: 'none' };
  }

  /** Readiness: the resolver answers (any answer, even NXDOMAIN, proves it is reachable). */
  async reachable(): Promise<boolean> {
    try {
      await this.resolver.resolve4('localhost.');
      return true;
    } catch (e) {
      return isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EREFUSED';
    }
  }
}
