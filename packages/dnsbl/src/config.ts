import { busSchema, httpSchema } from '@mailgate/runtime';
import { z } from 'zod';
import { isValidCodeSpec } from './codes.js';
import { parseCidr } from './ip.js';

/**
 * The `dnsbl:` config section, shared by ingress-smtp (connect filter) and the dnsbl-check stage so both read
 * the same zones, thresholds and cache. Every option has a default; see docs/dnsbl.md.
 */

/** A DNS server as `resolvers:` lists it: host, host:port, [v6]:port (also read by the senderAuth section). */
export const hostPortSchema = z
  .string()
  .regex(
    /^[^\s:[\]]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$|^[^\s:[\]]+$/,
    'expected host or host:port (IPv6: [addr]:port)',
  );

/** A DNS name (zone, domain), lower-cased, without a trailing dot; `what` names it in the error message. */
export const dnsNameSchema = (what: string) =>
  z
    .string()
    .min(1)
    .regex(/^(?!-)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/, `expected ${what}`)
    .transform((s) => s.replace(/\.$/, '').toLowerCase());

const zoneName = dnsNameSchema('a DNS zone name like zen.spamhaus.org');

const codeSpec = z.string().refine(isValidCodeSpec, 'expected a return code: a.b.c.d, a.b.c.d-e.f.g.h or a.b.c.d/n');

/** An IP address or CIDR network (also read by the senderAuth section). */
export const cidrSchema = z.string().refine((s) => {
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}, 'expected an IP address or CIDR, e.g. 10.0.0.0/8');

/** The default errorCodes: Spamhaus' published error block and 127.0.0.1 (URIBL/SURBL "query refused"). */
export const DEFAULT_ERROR_CODES = ['127.0.0.1', '127.255.255.0/24'] as const;

export const zoneSchema = z
  .object({
    /** The DNS zone queried, e.g. zen.spamhaus.org. The same name may appear several times with different `match`/`weight` (one DNS query serves all). */
    name: zoneName,
    /** Name shown in details, headers and the connect reply. Default: `name`. */
    label: z.string().min(1).optional(),
    /** ip = client/origin IPs (reversed octets, IPv6 nibbles); domain = HELO and envelope-sender domains; uri = domains (and IPs) of URLs in the body. */
    type: z.enum(['ip', 'domain', 'uri']).default('ip'),
    /** Added to the score when listed. Negative = allow list (DNSWL): a listing lowers the score. */
    weight: z.number().finite().default(1),
    /** Which answers count. None given: every 127/8 answer except error codes counts. */
    match: z
      .object({
        /** Exact codes, ranges `a-b` or CIDRs. */
        codes: z.array(codeSpec).optional(),
        /** Exchange-style bitmask on the last octet: listed when (octet & bitmask) != 0. */
        bitmask: z.number().int().min(1).max(255).optional(),
      })
      .strict()
      .optional(),
    /** Answers that mean error / query refused / rate limited: never "listed", reported as errors. Default: the section's `errorCodes`. */
    errorCodes: z.array(codeSpec).optional(),
    /** Reported in details and the header, never counted in the score. */
    informational: z.boolean().default(false),
    /** Query IPv6 addresses in this zone (ip and uri zones). Turn off for lists that have no IPv6 data. */
    ipv6: z.boolean().default(true),
    /** DNS timeout or resolver failure: 'not-listed' (default: the zone is ignored for that message) or 'tempfail' (the stage holds the message and retries, fail closed). */
    onTimeout: z.enum(['not-listed', 'tempfail']).default('not-listed'),
    /** Fetch the TXT record of a listing (shown in the connect reply and details). */
    txt: z.boolean().default(true),
    /** RFC 5782 test points for zone health. Defaults: ip → 127.0.0.2 / 127.0.0.1; domain, uri → test / invalid. */
    testPoints: z
      .object({ listed: z.string().min(1).optional(), unlisted: z.string().min(1).optional() })
      .strict()
      .default({}),
  })
  .strict();

export const dnsblSchema = z
  .object({
    /** Health/metrics HTTP server of the dnsbl-check service. */
    http: httpSchema('dnsbl-check'),
    /** Per-stage overrides of the common `bus:` section. */
    bus: busSchema.removeDefault().partial().optional(),
    /** DNS resolvers as host:port (port 53 if omitted), or 'system' for /etc/resolv.conf. Use a local caching resolver, not a public one: most lists refuse public resolvers. */
    resolvers: z.union([z.literal('system'), z.array(hostPortSchema).min(1)]).default('system'),
    /** Per-query timeout (all zones are queried in parallel, so this is also the added latency bound). */
    timeoutMs: z.number().int().min(10).max(30000).default(2000),
    zones: z.array(zoneSchema).default([]),
    /** Default error codes for zones without their own `errorCodes`. */
    errorCodes: z.array(codeSpec).default([...DEFAULT_ERROR_CODES]),
    thresholds: z
      .object({
        /** Score at or above which the message/connection is rejected. */
        reject: z.number().finite().default(1),
        /** Score at or above which the message is quarantined (below `reject`). null = no quarantine band. */
        quarantine: z.number().finite().nullable().default(null),
      })
      .strict()
      .default({}),
    /** Which facts the stage checks. */
    checks: z
      .object({
        clientIp: z.boolean().default(true),
        helo: z.boolean().default(true),
        senderDomain: z.boolean().default(true),
        uris: z.boolean().default(true),
        /** At most this many distinct URL hosts per message are looked up (the first ones in the body). */
        maxUriHosts: z.number().int().min(0).default(20),
        /** Bodies larger than this are not scanned for URLs (bytes). */
        maxBodyBytes: z
          .number()
          .int()
          .min(0)
          .default(2 * 1024 * 1024),
        /** URL hosts never looked up (your own domains); a suffix match: example.com covers www.example.com. */
        uriSkipDomains: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({}),
    /** Networks never looked up (private, loopback, link-local: no list has data for them). */
    skipNetworks: z
      .array(cidrSchema)
      .default([
        '127.0.0.0/8',
        '10.0.0.0/8',
        '172.16.0.0/12',
        '192.168.0.0/16',
        '169.254.0.0/16',
        '::1/128',
        'fc00::/7',
        'fe80::/10',
      ]),
    atConnect: z
      .object({
        /** Ingress rejects listed clients with 554 5.7.1 before any message is accepted. */
        enabled: z.boolean().default(true),
        /** Reply text. Placeholders: {ip} {zone} {txt} {score}. */
        message: z.string().min(1).default('Service unavailable; client host [{ip}] blocked using {zone}'),
        /** Recipients always accepted from a listed client (so it can reach you about the listing): a local part `postmaster@` or a full address. */
        exceptions: z.array(z.string().min(2).includes('@')).default(['postmaster@', 'abuse@']),
      })
      .strict()
      .default({}),
    receivedHeaders: z
      .object({
        /** Judge mail relayed by a trusted internal relay by the IP it received the mail from (deep header inspection). */
        enabled: z.boolean().default(false),
        /** Relays whose Received lines are believed. Lines added by any other host may be forged and are ignored. */
        trustedRelays: z.array(cidrSchema).default([]),
        /** How many trusted hops to walk back at most. */
        maxHops: z.number().int().min(1).max(50).default(5),
      })
      .strict()
      .default({}),
    health: z
      .object({
        /** Query each zone's RFC 5782 test points; a zone that fails is disabled (warning + metric) until healthy again. */
        enabled: z.boolean().default(true),
        intervalSec: z.number().int().min(1).default(300),
      })
      .strict()
      .default({}),
    cache: z
      .object({
        /** Cache answers in Redis (shared by all replicas; in-process when no Redis is given). */
        enabled: z.boolean().default(true),
        /** Clamp of the DNS TTL (seconds). */
        minTtlSec: z.number().int().min(1).default(60),
        maxTtlSec: z.number().int().min(1).default(3600),
        /** TTL of "not listed" answers when the zone's SOA minimum is unknown. */
        negativeTtlSec: z.number().int().min(1).default(900),
        /** Key prefix (after the `redis.keyPrefix`). */
        keyPrefix: z.string().default('dnsbl:'),
        /** Entries of the in-process cache used when no Redis client is given, and of the 5 s in-process front over Redis. */
        memoryEntries: z.number().int().min(0).default(50000),
      })
      .strict()
      .default({}),
    /** Prepend an X-Mailgate-DNSBL header with the score and listings to messages the stage passes or holds. */
    addHeader: z.boolean().default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.thresholds.quarantine !== null && c.thresholds.quarantine > c.thresholds.reject) {
      ctx.addIssue({
        code: 'custom',
        path: ['thresholds', 'quarantine'],
        message: 'must not exceed thresholds.reject',
      });
    }
    if (c.cache.minTtlSec > c.cache.maxTtlSec) {
      ctx.addIssue({ code: 'custom', path: ['cache', 'minTtlSec'], message: 'must not exceed cache.maxTtlSec' });
    }
  })
  .default({});

export type DnsblConfig = z.infer<typeof dnsblSchema>;
export type ZoneConfig = z.infer<typeof zoneSchema>;
export type ZoneType = ZoneConfig['type'];

/** A parsed config with defaults, for tests and callers that build one in code. */
export function dnsblConfig(input: unknown = {}): DnsblConfig {
  return dnsblSchema.parse(input);
}
