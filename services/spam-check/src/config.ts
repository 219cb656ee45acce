import { parseCidr } from '@mailgate/dnsbl';
import { busSchema, httpSchema } from '@mailgate/runtime';
import { z } from 'zod';

/**
 * The `spamCheck:` section. Every option has a default; the defaults fail closed (rspamd down → the message is
 * held, never passed unchecked). docs/spam-check.md documents each option; docs/configuration.md lists them.
 */

const endpoint = (port: number) =>
  z
    .object({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(1).max(65535).default(port) })
    .strict()
    .default({});

const cidr = z.string().refine(
  (s) => {
    try {
      parseCidr(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not an IP address or CIDR block' },
);

/** Score thresholds, in rspamd's score units. Each one is "at or above". */
const thresholdsSchema = z
  .object({
    /** ≥ tag: X-Spam-Flag: YES, X-Spam-Status: Yes, optional subject prefix; delivered. */
    tag: z.number().default(6),
    /** ≥ quarantine: held in quarantine with the score and top symbols as the reason. */
    quarantine: z.number().default(10),
    /**
     * ≥ reject: recorded as a rejection. The stage runs after the 250, so the message is quarantined (a bounce to
     * a possibly forged sender would be backscatter), never bounced.
     */
    reject: z.number().default(15),
  })
  .strict();

const thresholdsOverride = z
  .object({ tag: z.number().optional(), quarantine: z.number().optional(), reject: z.number().optional() })
  .strict();

const ordered = (t: { tag: number; quarantine: number; reject: number }) =>
  t.tag <= t.quarantine && t.quarantine <= t.reject;

export const domainOverrideSchema = z
  .object({
    thresholds: thresholdsOverride.optional(),
    subjectPrefix: z.string().max(64).optional(),
    dryRun: z.boolean().optional(),
  })
  .strict();

export const spamCheckSchema = z
  .object({
    http: httpSchema('spam-check'),
    bus: busSchema.removeDefault().partial().optional(),
    rspamd: z
      .object({
        /** Normal worker (`/checkv2`). */
        worker: endpoint(11333),
        /** Controller (learning from the admin API). */
        controller: endpoint(11334),
        /** Controller password (set it through MAILGATE__SPAM_CHECK__RSPAMD__PASSWORD or a Secret). */
        password: z.string().optional(),
        /** Whole /checkv2 exchange deadline. */
        timeoutMs: z.number().int().positive().default(15_000),
        connectTimeoutMs: z.number().int().positive().default(2000),
        /** Connections to the worker open at once; more checks wait their turn (rspamd closes each after its reply). */
        maxSockets: z.number().int().positive().max(256).default(16),
      })
      .strict()
      .default({}),
    thresholds: thresholdsSchema.default({}).refine(ordered, { message: 'need tag ≤ quarantine ≤ reject' }),
    /**
     * Per accepted domain (recipient domain) overrides. A message for several domains uses the strictest (lowest)
     * threshold of its recipients' domains: one copy is delivered to all of them.
     */
    domains: z.record(z.string().min(1), domainOverrideSchema).default({}),
    /** Prepended to the Subject at or above `tag`, e.g. "[SPAM] ". Empty: subject unchanged. */
    subjectPrefix: z.string().max(64).default(''),
    headers: z
      .object({
        /** Add X-Spam-Status/X-Spam-Score/X-Mailgate-SCL to every checked message (not only tagged ones). */
        always: z.boolean().default(true),
        /** Also add X-Spam-Symbols (top symbols) at or above `tag`. */
        symbols: z.boolean().default(true),
      })
      .strict()
      .default({}),
    /** Record the would-be action (tracking, metrics) but pass every message (headers are still added). */
    dryRun: z.boolean().default(false),
    /**
     * Who is not checked (SCL -1, `X-Spam-Status: skipped`): authenticated (SMTP AUTH) users, clients in
     * ingress.trustedNetworks, allow-listed envelope senders (`user@domain`, `domain` or `.domain` for
     * subdomains) and client IPs/CIDRs.
     */
    skip: z
      .object({
        authenticated: z.boolean().default(true),
        trustedNetworks: z.boolean().default(true),
        senders: z.array(z.string().min(1)).default([]),
        ips: z.array(cidr).default([]),
      })
      .strict()
      .default({}),
    /** Larger messages are not sent to rspamd: passed with `X-Spam-Status: skipped (too large)`. */
    maxMessageBytes: z
      .number()
      .int()
      .positive()
      .default(20 * 1024 * 1024),
    /**
     * When rspamd cannot answer: pass with `X-Spam-Status: unchecked` instead of holding the message. Off by
     * default (fail closed); every fail-open pass is logged and counted.
     */
    failOpen: z.boolean().default(false),
    /** Held this long without an rspamd answer → `onHoldExpired` (default: the common bus.maxHoldMs). */
    maxHoldMs: z.number().int().positive().optional(),
    /** After maxHoldMs without an answer: quarantine (default, fail closed) or pass unchecked (needs failOpen). */
    unchecked: z.enum(['quarantine', 'pass']).default('quarantine'),
    /** Top symbols listed in the reason, the tracking details and X-Spam-Symbols. */
    topSymbols: z.number().int().min(1).max(50).default(5),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const [d, o] of Object.entries(c.domains)) {
      const t = { ...c.thresholds, ...o.thresholds };
      if (!ordered(t))
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['domains', d, 'thresholds'],
          message: 'need tag ≤ quarantine ≤ reject',
        });
    }
    if (c.unchecked === 'pass' && !c.failOpen) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['unchecked'],
        message: "'pass' lets unchecked mail through: allowed only with spamCheck.failOpen: true",
      });
    }
  })
  .transform((c) => (c.maxHoldMs === undefined ? c : { ...c, bus: { ...c.bus, maxHoldMs: c.maxHoldMs } }))
  .default({});

export type SpamCheckConfig = z.output<typeof spamCheckSchema>;
export type SpamCheckInput = z.input<typeof spamCheckSchema>;
export type Thresholds = z.output<typeof thresholdsSchema>;
