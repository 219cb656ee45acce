import { z } from 'zod';

/**
 * `ingress.recipients`: which recipients exist in each accepted domain. Sources are named once and listed per
 * domain in the order they are asked; a recipient exists when any source knows it (docs/configuration.md).
 */

const name = z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'source names are letters, digits, - and _');

export const DEFAULT_LDAP_FILTER = '(|(mail={address})(proxyAddresses=smtp:{address}))';

const ldapSource = z
  .object({
    type: z.literal('ldap'),
    /** ldap://host:389 or ldaps://host:636 (several, comma-separated, are tried in turn by the pool). */
    url: z.string().regex(/^ldaps?:\/\/.+/, 'expected ldap://… or ldaps://…'),
    /** Upgrade ldap:// with StartTLS before binding. */
    startTls: z.boolean().default(false),
    /** CA bundle (PEM file) that signed the directory's certificate; absent = the system store. */
    caFile: z.string().optional(),
    /** Verify the directory's certificate (only ever false in a lab). */
    rejectUnauthorized: z.boolean().default(true),
    /** Service account DN; absent = anonymous bind. */
    bindDn: z.string().optional(),
    /** Its password (prefer bindPasswordFile: a mounted Kubernetes Secret). */
    bindPassword: z.string().optional(),
    bindPasswordFile: z.string().optional(),
    baseDn: z.string().min(1),
    scope: z.enum(['base', 'one', 'sub']).default('sub'),
    /**
     * Search filter; `{address}`, `{local}` and `{domain}` are replaced by the (RFC 4515-escaped) recipient after
     * sub-address stripping. The default matches Active Directory's `mail` and `proxyAddresses` (smtp:…).
     */
    filter: z.string().default(DEFAULT_LDAP_FILTER),
    /** Per-operation timeout (bind, search). */
    timeoutMs: z.number().int().positive().default(3000),
    connectTimeoutMs: z.number().int().positive().default(3000),
    /** Connections kept open and bound; searches are spread over them. */
    poolSize: z.number().int().min(1).max(32).default(2),
  })
  .strict();

const calloutSource = z
  .object({
    type: z.literal('callout'),
    /** The internal mail server that knows its recipients. */
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(25),
    /** Our EHLO name (default: gateway.hostname). */
    helo: z.string().optional(),
    timeoutMs: z.number().int().positive().default(5000),
    /**
     * Probes per second to this destination, shared by all replicas through Redis (per replica while Redis is
     * unreachable); more wait for their turn (up to timeoutMs), then the recipient gets 451 (or failOpen).
     */
    maxPerSecond: z.number().int().positive().default(20),
  })
  .strict();

const staticSource = z
  .object({
    type: z.literal('static'),
    /** Local parts or full addresses; `*` matches any run of characters (`sales-*`, `*` = catch-all). */
    addresses: z.array(z.string().min(1)).default([]),
  })
  .strict();

export const recipientSourceSchema = z.discriminatedUnion('type', [ldapSource, calloutSource, staticSource]);

export const recipientsSchema = z
  .object({
    sources: z.record(name, recipientSourceSchema).default({}),
    /** Domains whose recipients are checked; a domain not listed accepts any local part (as before). */
    domains: z
      .array(
        z
          .object({
            /** A domain or *.domain (subdomains). Must also be in ingress.acceptedDomains. */
            domain: z.string().min(1),
            sources: z.array(name).min(1),
            /** `user+tag@` is looked up as `user@`; '' turns sub-addressing off. */
            subaddressSeparator: z.string().max(1).default('+'),
          })
          .strict(),
      )
      .default([]),
    cache: z
      .object({
        /** Known recipients are remembered this long (Redis, shared by replicas). 0 = no caching. */
        positiveTtlSeconds: z.number().int().nonnegative().default(3600),
        /** Unknown recipients: shorter, so a new mailbox works soon after it is created. */
        negativeTtlSeconds: z.number().int().nonnegative().default(300),
      })
      .strict()
      .default({}),
    /** When a source cannot answer (directory down): false → 451 4.4.3 (try later), true → accept. */
    failOpen: z.boolean().default(false),
    harvest: z
      .object({
        /** Delay before answering the n-th unknown recipient of a session: baseMs * factor^(n-1), capped. */
        tarpitBaseMs: z.number().int().nonnegative().default(1000),
        tarpitFactor: z.number().min(1).default(2),
        tarpitMaxMs: z.number().int().nonnegative().default(10_000),
        /** Unknown recipients per client IP per window (Redis, across replicas) before 421 and disconnect; 0 = off. */
        budget: z.number().int().nonnegative().default(20),
        windowSeconds: z.number().int().positive().default(3600),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    cfg.domains.forEach((d, i) =>
      d.sources.forEach((s, j) => {
        if (!cfg.sources[s]) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['domains', i, 'sources', j],
            message: `no source named ${JSON.stringify(s)} in recipients.sources`,
          });
        }
      }),
    );
    for (const [n, s] of Object.entries(cfg.sources)) {
      if (s.type === 'ldap' && s.bindDn && !s.bindPassword && !s.bindPasswordFile) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['sources', n, 'bindPasswordFile'],
          message: 'bindDn needs bindPassword or bindPasswordFile',
        });
      }
    }
  })
  .default({});

export type RecipientsConfig = z.infer<typeof recipientsSchema>;
export type RecipientSourceConfig = z.infer<typeof recipientSourceSchema>;
export type LdapSourceConfig = z.infer<typeof ldapSource>;
export type CalloutSourceConfig = z.infer<typeof calloutSource>;
export type StaticSourceConfig = z.infer<typeof staticSource>;
