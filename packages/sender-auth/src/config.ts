// One file (~320 lines): the zod schema of the one `senderAuth:` section; its defaults are documented option by
// option in docs/configuration.md, which follows this file's order.
import { cidrSchema, dnsNameSchema, hostPortSchema } from '@mailgate/dnsbl';
import { z } from 'zod';

/**
 * The `senderAuth:` config section: inbound SPF/DKIM/DMARC/ARC verification and policy (ingress, or a stage),
 * and outbound DKIM signing / ARC sealing (delivery). Every option has a default; see docs/configuration.md and
 * packages/sender-auth/README.md.
 */

const domainName = dnsNameSchema('a domain name like example.com');

/** An RFC 8601 authserv-id: a token (domain names are the norm). No spaces, semicolons, quotes or parentheses. */
const authservId = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\s;"()\\]+$/, 'expected a token such as mx.example.com (no spaces, ";", quotes or parentheses)');

const selector = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected a DKIM selector (letters, digits, "-", "_", ".")');

const reply = (code: number, status: string, text: string) =>
  z
    .object({
      code: z.number().int().min(400).max(599).default(code),
      status: z
        .string()
        .regex(/^[245]\.\d{1,3}\.\d{1,3}$/, 'expected an enhanced status code like 5.7.1')
        .default(status),
      /** Reply text. Placeholders: {domain} (the domain whose policy applied), {ip}, {result}. */
      text: z.string().min(1).max(400).default(text),
    })
    .strict()
    .refine((r) => String(r.code)[0] === r.status[0], 'code and status must have the same class (4xx/4.x.x, 5xx/5.x.x)')
    .default({});

export const CHECKS = ['spf', 'dkim', 'dmarc', 'arc'] as const;
export type CheckName = (typeof CHECKS)[number];

/** Headers signed by default (RFC 6376 §5.4.1 recommendations, plus the List-* and MIME fields). */
export const DEFAULT_SIGNED_HEADERS = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'in-reply-to',
  'references',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
] as const;

/** Oversigned by default: one more h= entry than instances present, so an added copy breaks the signature. */
export const DEFAULT_OVERSIGNED_HEADERS = ['from', 'reply-to', 'subject', 'date', 'to', 'cc'] as const;

const signingKeySchema = z
  .object({
    /** DKIM selector published as `<selector>._domainkey.<domain>`. */
    selector,
    /** PEM private key file (PKCS#8 or PKCS#1 RSA, PKCS#8 Ed25519) or a base64 Ed25519 seed (dkimpy/rspamd format); mount it from a Kubernetes Secret. */
    keyFile: z.string().min(1),
    /** Sign with this key. At most one active key per algorithm and domain: the other is the next (or previous) key during a rotation. */
    active: z.boolean().default(true),
  })
  .strict();

export const signingDomainSchema = z
  .object({
    /** d= of the signature. Mail is signed when its From domain is this domain (or a subdomain, see `subdomains`). */
    domain: domainName,
    /** Also sign mail whose From domain is a subdomain of `domain` (relaxed DMARC alignment still holds). */
    subdomains: z.boolean().default(true),
    keys: z.array(signingKeySchema).min(1),
  })
  .strict()
  .superRefine((d, ctx) => {
    const sels = new Set<string>();
    d.keys.forEach((k, i) => {
      if (sels.has(k.selector)) {
        ctx.addIssue({ code: 'custom', path: ['keys', i, 'selector'], message: `duplicate selector ${k.selector}` });
      }
      sels.add(k.selector);
    });
    if (!d.keys.some((k) => k.active)) {
      ctx.addIssue({ code: 'custom', path: ['keys'], message: 'at least one key must be active' });
    }
  });

export const senderAuthSchema = z
  .object({
    /** Verify SPF, DKIM, DMARC and ARC on inbound mail. Outbound signing is `signing.enabled`. */
    enabled: z.boolean().default(true),
    /**
     * authserv-id written into Authentication-Results (RFC 8601), normally the gateway's host name. null: the
     * caller's host name (`gateway.hostname`). Incoming Authentication-Results claiming this id are removed.
     */
    authservId: authservId.nullable().default(null),
    /** More authserv-ids removed from incoming mail as forgeries (old host names, internal relays' ids). */
    removeAuthservIds: z.array(authservId).default([]),
    /** Where DKIM/DMARC/ARC are decided: `data` = at end of DATA before the 250 (a DMARC reject is a 550, no backscatter); `pipeline` = in a stage after the 250 (a reject becomes quarantine). */
    verifyAt: z.enum(['data', 'pipeline']).default('data'),
    /** Record the would-be decision (tracking, logs, metrics) and accept every message. Headers are still added. */
    dryRun: z.boolean().default(false),
    dns: z
      .object({
        /** DNS resolvers as host:port (port 53 if omitted), or 'system' for /etc/resolv.conf. Use a local validating, caching resolver. */
        resolvers: z.union([z.literal('system'), z.array(hostPortSchema).min(1)]).default('system'),
        /** Per-query timeout (ms). A query that gets no answer in time is a temperror. */
        timeoutMs: z.number().int().min(10).max(30000).default(2000),
        /** Tries per resolver before a query fails (c-ares `tries`). */
        tries: z.number().int().min(1).max(5).default(2),
        cache: z
          .object({
            /** Answers kept in process (0 = no cache). Failures (temperror) are never cached. */
            maxEntries: z.number().int().min(0).default(10000),
            /** Lifetime of positive answers (s). The real TTL is not visible through node:dns for TXT, so keep this short and let the local resolver honour TTLs. */
            ttlSec: z.number().int().min(1).max(86400).default(60),
            /** Lifetime of NXDOMAIN / no-data answers (s). */
            negativeTtlSec: z.number().int().min(1).max(86400).default(30),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    timeouts: z
      .object({
        /** Whole SPF evaluation (up to 10 DNS-querying terms plus MX/PTR sub-queries). Beyond it: temperror. */
        spfMs: z.number().int().min(100).max(60000).default(10000),
        /** DKIM + ARC + DMARC of one message. Beyond it the unfinished checks are temperror. */
        messageMs: z.number().int().min(100).max(120000).default(15000),
      })
      .strict()
      .default({}),
    exempt: z
      .object({
        /** Client networks never checked (internal relays, your own outbound servers). */
        networks: z.array(cidrSchema).default([]),
        /** Sender domains never judged (suffix match): the envelope domain exempts SPF, the From domain exempts DMARC. Results are still recorded. */
        domains: z.array(domainName).default([]),
        /** Sessions with SMTP AUTH (submission) are not checked: they are authenticated already. */
        authenticated: z.boolean().default(true),
      })
      .strict()
      .default({}),
    spf: z
      .object({
        enabled: z.boolean().default(true),
        /** SPF `fail` (-all): reject at MAIL FROM (550 5.7.23, breaks plain forwarding), tag, or ignore (DMARC still uses it). */
        onFail: z.enum(['reject', 'tag', 'ignore']).default('tag'),
        /** SPF `softfail` (~all). */
        onSoftfail: z.enum(['tag', 'ignore']).default('ignore'),
        /** RFC 7208 §4.6.4 limits: DNS-querying terms and void lookups. Raising them breaks interoperability. */
        maxLookups: z.number().int().min(1).max(50).default(10),
        maxVoidLookups: z.number().int().min(1).max(20).default(2),
      })
      .strict()
      .default({}),
    dkim: z
      .object({
        enabled: z.boolean().default(true),
        /** Smallest accepted RSA key (bits). Shorter keys give dkim=policy (weak-key). */
        minRsaBits: z.number().int().min(512).max(8192).default(1024),
        /** A passing signature with l= that leaves part of the body unsigned: `ignore` = report dkim=policy and do not use it for DMARC (the unsigned tail could be anyone's); `accept` = count it as pass. */
        partialBody: z.enum(['ignore', 'accept']).default('ignore'),
      })
      .strict()
      .default({}),
    dmarc: z
      .object({
        enabled: z.boolean().default(true),
        /** DMARC fail under p=reject: reject (550 at end of DATA; quarantine when verifyAt=pipeline), quarantine, tag or ignore. */
        onReject: z.enum(['reject', 'quarantine', 'tag', 'ignore']).default('reject'),
        /** DMARC fail under p=quarantine. */
        onQuarantine: z.enum(['quarantine', 'tag', 'ignore']).default('quarantine'),
        /** Apply pct= (RFC 7489 §6.6.4): messages outside the sample get the next weaker policy. Sampling is by message id, so retries get the same answer. */
        honourPct: z.boolean().default(true),
      })
      .strict()
      .default({}),
    arc: z
      .object({
        enabled: z.boolean().default(true),
        /** ARC sealers (d= of the newest ARC-Seal) trusted to override a DMARC failure, e.g. mailing lists and forwarders you receive from. The chain must pass and the sealer's ARC-Authentication-Results must show dmarc=pass or an aligned dkim/spf pass. */
        trustedSealers: z.array(domainName).default([]),
      })
      .strict()
      .default({}),
    temperror: z
      .object({
        /** Checks whose DNS failures never hold mail (fail open for that check). Default: none, fail closed (451 4.7.5 / hold). */
        failOpen: z.array(z.enum(CHECKS)).default([]),
        /** After this many tempfailed attempts of the same message, remaining DNS failures fail open. null = never (hold until the sender gives up). */
        failOpenAfterAttempts: z.number().int().min(1).nullable().default(null),
      })
      .strict()
      .default({}),
    replies: z
      .object({
        /** DMARC p=reject failure, at end of DATA. */
        dmarcReject: reply(550, '5.7.1', 'Message rejected: {domain} DMARC policy does not allow this sender'),
        /** SPF fail with spf.onFail=reject, at MAIL FROM (RFC 7372 X.7.23). */
        spfFail: reply(550, '5.7.23', 'SPF validation failed: {domain} does not permit {ip} to send its mail'),
        /** A DNS failure that decides the outcome (fail closed). */
        tempfail: reply(451, '4.7.5', 'Sender authentication could not be completed (DNS); try again later'),
      })
      .strict()
      .default({}),
    /** Header added to messages whose decision is `tag` (value: `<method>=<result>; <reason>`). */
    tagHeader: z
      .string()
      .regex(/^[!-9;-~]+$/, 'expected a header field name')
      .default('X-Mailgate-Auth'),
    signing: z
      .object({
        /** Sign outbound mail with DKIM (delivery). */
        enabled: z.boolean().default(false),
        domains: z.array(signingDomainSchema).default([]),
        /** Sign mail whose From domain has no key with this domain's keys (not DMARC-aligned; helps reputation and forwarded mail). null = leave it unsigned. */
        fallbackDomain: domainName.nullable().default(null),
        /** c= header/body canonicalisation. relaxed/relaxed survives the usual re-folding and whitespace changes. */
        canonicalization: z
          .enum(['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple'])
          .default('relaxed/relaxed'),
        /** Header fields signed (each instance present). */
        headers: z
          .array(z.string().regex(/^[!-9;-~]+$/))
          .default([...DEFAULT_SIGNED_HEADERS])
          .transform((a) => [...new Set(a.map((h) => h.toLowerCase()))]),
        /** Header fields oversigned: also signed once more than present, so adding one breaks the signature. Must be a subset of `headers` (From is always oversigned). */
        oversign: z
          .array(z.string().regex(/^[!-9;-~]+$/))
          .default([...DEFAULT_OVERSIGNED_HEADERS])
          .transform((a) => [...new Set(['from', ...a.map((h) => h.toLowerCase())])]),
        /** x= expiry (seconds after signing). null = no expiry. */
        expireSec: z.number().int().min(60).nullable().default(null),
        arcSeal: z
          .object({
            /** ARC-seal mail mailgate forwards (inbound mail relayed to the next hop, e.g. Microsoft 365 or Google Workspace behind the gateway), recording our Authentication-Results for the next hop (RFC 8617). Independent of `enabled` (DKIM signing of outbound mail). */
            enabled: z.boolean().default(false),
            /** d= of the seal; normally one of the signing domains. */
            domain: domainName.nullable().default(null),
            selector: selector.nullable().default(null),
            /** RSA key (mailauth seals with rsa-sha256 only). */
            keyFile: z.string().min(1).nullable().default(null),
          })
          .strict()
          .default({}),
      })
      .strict()
      .superRefine((s, ctx) => {
        const doms = new Set<string>();
        s.domains.forEach((d, i) => {
          if (doms.has(d.domain)) {
            ctx.addIssue({ code: 'custom', path: ['domains', i, 'domain'], message: `duplicate domain ${d.domain}` });
          }
          doms.add(d.domain);
        });
        if (s.fallbackDomain && !doms.has(s.fallbackDomain)) {
          ctx.addIssue({
            code: 'custom',
            path: ['fallbackDomain'],
            message: `${s.fallbackDomain} has no entry in signing.domains`,
          });
        }
        const signed = new Set(s.headers);
        for (const h of s.oversign) {
          if (!signed.has(h)) {
            ctx.addIssue({ code: 'custom', path: ['oversign'], message: `${h} is not in signing.headers` });
          }
        }
        if (!signed.has('from')) {
          ctx.addIssue({ code: 'custom', path: ['headers'], message: 'From must be signed (RFC 6376 §5.4)' });
        }
        if (s.arcSeal.enabled && (!s.arcSeal.domain || !s.arcSeal.selector || !s.arcSeal.keyFile)) {
          ctx.addIssue({
            code: 'custom',
            path: ['arcSeal'],
            message: 'arcSeal.enabled needs domain, selector and keyFile',
          });
        }
        if (s.enabled && s.domains.length === 0) {
          ctx.addIssue({ code: 'custom', path: ['domains'], message: 'signing.enabled needs at least one domain' });
        }
      })
      .default({}),
  })
  .strict()
  .default({});

export type SenderAuthConfig = z.infer<typeof senderAuthSchema>;
export type SigningConfig = SenderAuthConfig['signing'];
export type SigningDomainConfig = SigningConfig['domains'][number];
export type ReplyConfig = SenderAuthConfig['replies']['tempfail'];

/** A parsed config with defaults, for tests and callers that build one in code. */
export function senderAuthConfig(input: unknown = {}): SenderAuthConfig {
  return senderAuthSchema.parse(input);
}
