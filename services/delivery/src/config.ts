import { RETRY_QUEUE } from '@mailgate/delivery-queue';
import { busSchema, httpSchema } from '@mailgate/runtime';
import { z } from 'zod';

/**
 * The `delivery:` config section. Every option has a default; see docs/delivery.md for the operator's view.
 * Times are milliseconds.
 */

const hostPort = z
  .string()
  .regex(/^[^\s:[\]]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/, 'expected host:port (IPv6 as [addr]:port)');

/** A smarthost: `host:port`, or `{ address: host:port, priority }` (lower first, equal priorities shared at random). */
const smarthostSchema = z.union([
  hostPort,
  z.object({ address: hostPort, priority: z.number().int().min(0).max(65535).default(10) }).strict(),
]);

export const tlsModeSchema = z.enum(['none', 'opportunistic', 'required']);
export type TlsMode = z.infer<typeof tlsModeSchema>;

const tlsFields = {
  /** none: never STARTTLS; opportunistic: STARTTLS when offered, plain otherwise; required: defer unless STARTTLS works. */
  tls: tlsModeSchema.default('opportunistic'),
  /** Verify the server certificate (chain + name). Default false: encryption without authentication, as MTAs do. */
  tlsVerify: z.boolean().default(false),
};

export const routeSchema = z
  .object({
    /**
     * Recipient domains this route serves: `example.com` (exact), `*.example.com` (any subdomain, not the domain
     * itself), `.example.com` (the domain and its subdomains).
     */
    domains: z.array(z.string().min(1)).min(1),
    /** `smarthost` (relay to `hosts`) or `mx` (look up the recipient domain's MX records). */
    type: z.enum(['smarthost', 'mx']).default('smarthost'),
    hosts: z.array(smarthostSchema).default([]),
    ...tlsFields,
    /** SMTP AUTH towards the smarthost (only sent when the server offers AUTH). */
    auth: z.object({ user: z.string(), pass: z.string() }).strict().optional(),
  })
  .strict()
  .refine((r) => r.type === 'mx' || r.hosts.length > 0, { message: 'a smarthost route needs at least one host' });

export const deliverySchema = z
  .object({
    http: httpSchema('delivery'),
    bus: busSchema.removeDefault().partial().optional(),
    /** Routing table, first match wins (exact domains are checked before wildcards regardless of order). */
    routes: z.array(routeSchema).default([]),
    /** What happens to recipients no route matches. */
    defaultRoute: z
      .object({
        type: z.enum(['mx', 'smarthost']).default('mx'),
        hosts: z.array(smarthostSchema).default([]),
        ...tlsFields,
        auth: z.object({ user: z.string(), pass: z.string() }).strict().optional(),
      })
      .strict()
      .refine((r) => r.type === 'mx' || r.hosts.length > 0, { message: 'a smarthost default route needs hosts' })
      .default({}),
    dns: z
      .object({
        /** Resolvers as host:port; empty = the system resolvers. */
        resolvers: z.array(hostPort).default([]),
        timeoutMs: z.number().int().positive().default(5000),
        tries: z.number().int().positive().default(2),
        /** Also try AAAA addresses of MX hosts. */
        ipv6: z.boolean().default(true),
      })
      .strict()
      .default({}),
    /** Port used to reach MX hosts. Only tests change it. */
    mxPort: z.number().int().min(1).max(65535).default(25),
    /** EHLO name; default gateway.hostname. */
    ehloName: z.string().optional(),
    timeouts: z
      .object({
        connectMs: z.number().int().positive().default(30_000),
        greetingMs: z.number().int().positive().default(300_000),
        /** Inactivity limit for each command reply (EHLO, MAIL, RCPT, DATA…). */
        commandMs: z.number().int().positive().default(300_000),
        /** Whole DATA phase: message transfer plus the final reply. */
        dataMs: z.number().int().positive().default(600_000),
      })
      .strict()
      .default({}),
    retry: z
      .object({
        /** Postfix-like: 5 min, doubling, capped at ~67 min, give up after 5 days. */
        schedule: z
          .object({
            initialMs: z.number().int().positive().default(300_000),
            factor: z.number().min(1).default(2),
            maxMs: z.number().int().positive().default(4_000_000),
            giveUpAfterMs: z
              .number()
              .int()
              .positive()
              .default(5 * 24 * 3600_000),
          })
          .strict()
          .default({}),
        /** Retry jobs processed in parallel by one instance. */
        concurrency: z.number().int().positive().default(10),
        /** bullmq queue name (keys: <redis.keyPrefix><queue>:…). */
        queue: z.string().default(RETRY_QUEUE),
        /**
         * How often the reconciler runs: it re-creates retry jobs missing for stored messages, and replaces the
         * retry worker when a due job waited through two of its passes while the worker started nothing.
         */
        reconcileEveryMs: z.number().int().positive().default(60_000),
        /** A retry attempt running this long counts as hung (its slot as free) for that check. */
        hungAttemptMs: z.number().int().positive().default(1_800_000),
      })
      .strict()
      .default({}),
    /** Send a "delayed" DSN (once) when a message is still undelivered after this long. Unset: never. */
    delayDsnAfterMs: z.number().int().positive().optional(),
    /** How long a per-(message, recipient) delivered marker is kept (must exceed the retry window). */
    markerTtlMs: z
      .number()
      .int()
      .positive()
      .default(7 * 24 * 3600_000),
    /**
     * How long a retry waits before resending to recipients whose earlier attempt reached DATA with an unknown
     * outcome (process killed between the remote 250 and the record, connection lost after the final dot). After
     * that it resends and counts mailgate_delivery_possible_duplicates_total (docs/operations.md, duplicate rule).
     */
    pendingTtlMs: z.number().int().positive().default(600_000),
    /**
     * Local file where remote 250s are journaled while Redis cannot record them (replayed on start). Default:
     * `<os tmpdir>/mailgate-delivery-<gateway.instance>.outcomes.jsonl`; put it on a volume that survives restarts.
     */
    outcomeJournalFile: z.string().min(1).optional(),
    /**
     * The per-message claim every replica takes around "check markers → send → write markers" (exactly once across
     * replicas). The holder extends it every ttlMs/3; a crashed holder's claim ends after ttlMs.
     */
    claim: z
      .object({
        /** Lifetime of a claim its holder stopped extending (a crashed replica blocks the message this long). */
        ttlMs: z.number().int().positive().default(30_000),
        /** How long an attempt waits for another attempt's claim before proceeding without it (markers re-checked). */
        waitMs: z.number().int().positive().default(120_000),
        /** Poll interval while waiting for a claim. */
        pollMs: z.number().int().positive().default(50),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        /** Open connections per destination (domain or smarthost route), across all replicas (Redis). */
        maxConnectionsPerDestination: z.number().int().positive().default(20),
        /** Messages sent over one connection before it is closed. */
        maxMessagesPerConnection: z.number().int().positive().default(100),
        /** Idle connections are kept this long for reuse. */
        connectionIdleMs: z.number().int().nonnegative().default(2_000),
        /** How long to wait for a connection slot before deferring the recipients. */
        slotWaitMs: z.number().int().nonnegative().default(30_000),
        /** Consecutive temporary failures (connect, 421, 4xx) after which a destination is backed off as a whole. */
        backoffAfterFailures: z.number().int().positive().default(5),
        /** How long a backed-off destination is skipped (its recipients deferred without connecting). */
        backoffMs: z.number().int().positive().default(300_000),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export type DeliveryConfig = z.infer<typeof deliverySchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
