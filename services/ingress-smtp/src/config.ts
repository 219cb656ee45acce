import { MAX_MESSAGE_BYTES } from '@mailgate/contracts';
import { listsConfigSchema } from '@mailgate/lists';
import { recipientsSchema } from '@mailgate/recipients';
import { httpSchema } from '@mailgate/runtime';
import { z } from 'zod';
import { normalizeDomain } from './address.js';
import { isCidr } from './cidr.js';
import { isPasswordHash } from './password.js';

/**
 * The `ingress:` config section (services/ingress-smtp). Every option has a default; docs/ingress-smtp.md lists
 * them. Validated strictly: an unknown key or a bad value stops the start-up with the key named.
 */

const cidr = z.string().refine(isCidr, 'expected an IP address or CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32');

const domain = z
  .string()
  .refine((d) => normalizeDomain(d.startsWith('*.') ? d.slice(2) : d) !== null, 'expected a domain name (or *.domain)');

const listener = (port: number, enabled: boolean) =>
  z
    .object({
      enabled: z.boolean().default(enabled),
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(port),
    })
    .strict()
    .default({});

const window = (max: number, windowSeconds: number) =>
  z
    .object({
      /** Allowed events per window per client IP; 0 disables the limit. */
      max: z.number().int().nonnegative().default(max),
      windowSeconds: z.number().int().positive().default(windowSeconds),
    })
    .strict()
    .default({});

/**
 * Whether every address of `domain` (a name or *.name) is in an accepted domain: `a.test` by `a.test` or `*.test`;
 * `*.a.test` by `*.a.test` or `*.test` (an exact `a.test` does not accept its subdomains).
 */
export function domainCovered(domain: string, accepted: readonly string[]): boolean {
  const split = (d: string) => {
    const wild = d.startsWith('*.');
    const bare = (wild ? d.slice(2) : d).replace(/\.$/, '');
    return { wild, name: normalizeDomain(bare) ?? bare.toLowerCase() };
  };
  const r = split(domain);
  return accepted
    .map(split)
    .some((a) =>
      a.wild ? r.name.endsWith(`.${a.name}`) || (r.wild && r.name === a.name) : !r.wild && r.name === a.name,
    );
}

export const ingressSchema = z
  .object({
    http: httpSchema('ingress-smtp'),
    listeners: z
      .object({
        /** MX-facing: mail from the internet. STARTTLS offered when `tls` is set; no AUTH. 25 in production. */
        mx: listener(2525, true),
        /** Submission (RFC 6409): AUTH required, offered only after STARTTLS. Needs `tls`. 587 in production. */
        submission: listener(2587, false),
      })
      .strict()
      .default({}),
    /** Certificate for STARTTLS (PEM files, e.g. a mounted Kubernetes TLS secret). Absent: no STARTTLS. */
    tls: z
      .object({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
        /** Re-read the files this often and use new ones without a restart (0 = never). */
        reloadIntervalMs: z.number().int().nonnegative().default(60_000),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      })
      .strict()
      .optional(),
    /** Domains the gateway receives mail for. A string, or { domain, recipients } to accept only listed users. */
    acceptedDomains: z
      .array(z.union([domain, z.object({ domain, recipients: z.array(z.string().min(1)).optional() }).strict()]))
      .default([]),
    /** Recipient validation at RCPT (LDAP/AD, SMTP callout, static rules) and harvest protection: @mailgate/recipients. */
    recipients: recipientsSchema,
    /** Live sender/IP allow and block lists in Redis (admin API, console, `mailgate lists`): @mailgate/lists. */
    lists: listsConfigSchema,
    /** Networks (CIDR, IPv4/IPv6) allowed to relay to any domain: the internal mail servers. */
    trustedNetworks: z.array(cidr).default([]),
    auth: z
      .object({
        /** username → scrypt hash (`mailgate hash-password`). */
        users: z.record(z.string().min(1), z.string().refine(isPasswordHash, 'expected a $scrypt$ hash')).default({}),
        /** Extra users from a file of `username:hash` lines (a mounted secret). */
        usersFile: z.string().optional(),
        /** Failed AUTH attempts per client IP (Redis, shared by replicas) before AUTH answers 454 for the window. */
        failures: window(5, 900),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        /** Largest message (advertised as SIZE; 552 beyond). At most the pipeline's record limit (50 MiB). */
        maxMessageBytes: z.number().int().positive().max(MAX_MESSAGE_BYTES).default(MAX_MESSAGE_BYTES),
        /** Recipients per message; 452 beyond. */
        maxRecipients: z.number().int().positive().default(100),
        /** Open SMTP connections per instance (both listeners each); 421 beyond. */
        maxConnections: z.number().int().positive().default(1000),
        /** Open connections per client IP per instance; 421 beyond. */
        maxConnectionsPerIp: z.number().int().positive().default(20),
        /** Messages (MAIL FROM) per client IP, counted in Redis across replicas; 450 4.7.1 beyond. */
        messageRate: window(600, 60),
        /** Trusted networks and authenticated clients are not rate limited. */
        rateLimitExemptTrusted: z.boolean().default(true),
        /** When Redis cannot be reached for a limit: 'tempfail' answers 451/454 (fail closed), 'allow' skips it. */
        onRedisError: z.enum(['tempfail', 'allow']).default('tempfail'),
        /** Idle time waiting for the client's next command or data (421 after). */
        idleTimeoutMs: z.number().int().positive().default(300_000),
        /** Whole session limit; the session ends with 421 at the next command once exceeded. */
        sessionTimeoutMs: z.number().int().positive().default(1_800_000),
        /** MX listener: wait this long before the greeting; a client that talks first gets 421 (early talker). */
        pregreetDelayMs: z.number().int().nonnegative().default(300),
        /** Unrecognised commands per session before 421 and disconnect. */
        maxUnknownCommands: z.number().int().positive().default(10),
        /**
         * Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: 512). Longer → 500 5.5.2, session kept.
         * AUTH lines (SASL responses) may be up to 12288 octets (RFC 4954 §4) whatever this says.
         */
        maxCommandLineOctets: z.number().int().min(512).max(12_288).default(512),
      })
      .strict()
      .default({}),
    /** Bare CR / bare LF (not part of CRLF) in commands and DATA: refuse them, or convert them to CRLF. */
    lineEndings: z.enum(['reject', 'normalize']).default('reject'),
    /** NUL octets in DATA: refuse the message (554 5.6.0), or remove them before the message goes anywhere. */
    nulBytes: z.enum(['reject', 'strip']).default('reject'),
    proxy: z
      .object({
        /** Load balancers allowed to send a PROXY protocol v1 header (they must send it); the header's source IP becomes the client IP. */
        trusted: z.array(cidr).default([]),
      })
      .strict()
      .default({}),
    xclient: z
      .object({
        /** Hosts allowed to use XCLIENT (testing tools, a trusted front MTA). */
        trusted: z.array(cidr).default([]),
      })
      .strict()
      .default({}),
    /** Look up the client's reverse DNS name (Received header, logs). */
    reverseDns: z.boolean().default(true),
    /** How long the durable produce of an accepted message may take before the client gets 451 4.3.0. */
    acceptTimeoutMs: z.number().int().positive().default(15_000),
    /**
     * Record refusals during the SMTP session (relay denied, DNSBL, unknown recipient, size, rate) as `refused`
     * tracking events, best effort through a producer of their own (never delays or fails an accept).
     */
    trackRefusals: z.boolean().default(true),
    /** Shutdown: how long sessions in DATA may take to finish before they are cut with 421. */
    drainTimeoutMs: z.number().int().positive().default(20_000),
    /** Optional text after the hostname in the 220 greeting. */
    banner: z.string().max(200).default(''),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (cfg.listeners.submission.enabled && !cfg.tls) {
      // Decision: no TLS → the submission listener refuses to start (rather than run without AUTH, which would
      // make it useless, or offer AUTH in clear text, which leaks passwords).
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['listeners', 'submission', 'enabled'],
        message: 'the submission listener requires ingress.tls (certFile/keyFile): AUTH is only offered after STARTTLS',
      });
    }
    if (!cfg.listeners.mx.enabled && !cfg.listeners.submission.enabled) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listeners'], message: 'no listener enabled' });
    }
    // Recipient rules for a domain we do not accept would never be asked (RCPT answers "relaying denied" first):
    // almost always a typo or a domain missing from acceptedDomains, so it stops the start-up instead.
    const accepted = cfg.acceptedDomains.map((d) => (typeof d === 'string' ? d : d.domain));
    cfg.recipients.domains.forEach((d, i) => {
      if (!domainCovered(d.domain, accepted)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['recipients', 'domains', i, 'domain'],
          message: `${JSON.stringify(d.domain)} is not in ingress.acceptedDomains (recipient rules apply only to accepted domains)`,
        });
      }
    });
  })
  .default({});

export type IngressConfig = z.infer<typeof ingressSchema>;
export type ListenerKind = 'mx' | 'submission';
