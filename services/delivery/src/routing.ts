import type { DeliveryConfig, TlsMode } from './config.js';

/** A host to relay to, with its preference (lower first). */
export interface Smarthost {
  readonly host: string;
  readonly port: number;
  readonly priority: number;
}

/** Where a recipient's mail goes and how. */
export interface Route {
  /** Stable name of the destination: limits, backoff and grouping use it (`mx:example.com`, `smarthost:<hosts>`). */
  readonly key: string;
  readonly type: 'mx' | 'smarthost';
  /** For mx: the recipient domain. */
  readonly domain: string;
  readonly hosts: readonly Smarthost[];
  readonly tls: TlsMode;
  readonly tlsVerify: boolean;
  readonly auth?: { readonly user: string; readonly pass: string } | undefined;
}

type HostSpec = string | { address: string; priority: number };

export function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

function parseHosts(specs: readonly HostSpec[]): Smarthost[] {
  // Plain strings keep their order: priority = position * 10.
  return specs.map((s, i) =>
    typeof s === 'string'
      ? { ...parseHostPort(s), priority: i * 10 }
      : { ...parseHostPort(s.address), priority: s.priority },
  );
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at < 0 ? '' : address.slice(at + 1)).toLowerCase().replace(/\.$/, '');
}

interface CompiledRule {
  readonly pattern: string;
  readonly kind: 'exact' | 'sub' | 'self-and-sub';
  readonly make: (domain: string) => Route;
}

/**
 * The routing table compiled once: exact domain rules first, then the most specific wildcard, then the default.
 * Pure (no I/O), so it is unit-tested on its own.
 */
export class Router {
  private readonly exact = new Map<string, (domain: string) => Route>();
  private readonly wildcards: CompiledRule[] = [];
  private readonly fallback: (domain: string) => Route;

  constructor(cfg: Pick<DeliveryConfig, 'routes' | 'defaultRoute'>) {
    cfg.routes.forEach((r, index) => {
      const hosts = parseHosts(r.hosts);
      const make = (domain: string): Route => ({
        key:
          r.type === 'mx'
            ? `mx:${domain}`
            : `smarthost:${index}:${r.hosts.map((h) => (typeof h === 'string' ? h : h.address)).join(',')}`,
        type: r.type,
        domain,
        hosts,
        tls: r.tls,
        tlsVerify: r.tlsVerify,
        auth: r.auth,
      });
      for (const raw of r.domains) {
        const d = raw.toLowerCase().replace(/\.$/, '');
        if (d.startsWith('*.')) this.wildcards.push({ pattern: d.slice(2), kind: 'sub', make });
        else if (d.startsWith('.')) this.wildcards.push({ pattern: d.slice(1), kind: 'self-and-sub', make });
        else if (!this.exact.has(d)) this.exact.set(d, make);
      }
    });
    // Most specific (longest) pattern first.
    this.wildcards.sort((a, b) => b.pattern.length - a.pattern.length);
    const dr = cfg.defaultRoute;
    const dhosts = parseHosts(dr.hosts);
    this.fallback = (domain) => ({
      key: dr.type === 'mx' ? `mx:${domain}` : `smarthost:default`,
      type: dr.type,
      domain,
      hosts: dhosts,
      tls: dr.tls,
      tlsVerify: dr.tlsVerify,
      auth: dr.auth,
    });
  }

  route(recipient: string): Route {
    const domain = domainOf(recipient);
    const exact = this.exact.get(domain);
    if (exact) return exact(domain);
    for (const w of this.wildcards) {
      if (domain.endsWith(`.${w.pattern}`) || (w.kind === 'self-and-sub' && domain === w.pattern))
        return w.make(domain);
    }
    return this.fallback(domain);
  }

  /** Recipients grouped by destination (one SMTP transaction per group). */
  group(recipients: readonly string[]): { route: Route; recipients: string[] }[] {
    const groups = new Map<string, { route: Route; recipients: string[] }>();
    for (const r of recipients) {
      const route = this.route(r);
      let g = groups.get(route.key);
      if (!g) groups.set(route.key, (g = { route, recipients: [] }));
      g.recipients.push(r);
    }
    return [...groups.values()];
  }
}

/** Lower priority first; equal priorities in random order (RFC 5321 §5.1 load sharing). */
export function orderByPriority<T extends { priority: number }>(items: readonly T[], random = Math.random): T[] {
  const keyed = items.map((item) => ({ item, r: random() }));
  keyed.sort((a, b) => a.item.priority - b.item.priority || a.r - b.r);
  return keyed.map((k) => k.item);
}
