import { z } from 'zod';
import { CHAINABLE_STAGES, chainProblem } from '@mailgate/contracts';
import { DEFAULT_MAILBOX_DIR } from './dev-mailbox.js';

/**
 * The `dev` section: what `mailgate dev` starts beside the services, so one command on a fresh machine runs
 * the whole gateway. Ignored by the services themselves.
 */
export const devSchema = z
  .object({
    broker: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9092),
        /** Keep the embedded broker's log on disk (restarts keep queued mail). null = in memory. */
        dataDir: z.string().nullable().default('./var/kafka'),
        partitions: z.number().int().positive().default(6),
      })
      .strict()
      .default({}),
    /** Start a private redis-server when `redis.url` does not answer. */
    redis: z
      .object({ spawn: z.enum(['auto', 'always', 'never']).default('auto') })
      .strict()
      .default({}),
    /**
     * Start a local clamd with the generated test signature database (EICAR only: there is no signature download
     * in dev mode) when the configured clamd does not answer. Production points virusScan.clamd at a real clamd.
     */
    clamd: z
      .object({ spawn: z.enum(['auto', 'always', 'never']).default('auto') })
      .strict()
      .default({}),
    /**
     * Start Debian's rspamd (no network lookups; Bayes in the dev Redis) when spamCheck.rspamd.worker does not
     * answer. The first start on a machine compiles rspamd's regexp cache (tens of seconds).
     */
    rspamd: z
      .object({ spawn: z.enum(['auto', 'always', 'never']).default('auto') })
      .strict()
      .default({}),
    /**
     * Start a seeded Debian slapd (users user, alice (+a.smith), bob, postmaster (+abuse) in each domain checked
     * against it) for the `type: ldap` sources of ingress.recipients whose url does not answer, and point them at
     * it. Without slapd installed (or when it fails to start), those sources become a static list of the same users
     * (a warning says so).
     */
    ldap: z
      .object({ spawn: z.enum(['auto', 'always', 'never']).default('auto') })
      .strict()
      .default({}),
    /** A local SMTP sink standing in for the internal mail server; delivered mail is logged and saved. */
    sink: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(2526),
        /**
         * Every message the sink accepts is saved here as `<X-Mailgate-Id>.eml` (dev-mailbox.ts), and the admin
         * console shows it as "Dev mailbox". Default: `<os tmp dir>/mailgate-dev/mailbox`; null = keep nothing.
         */
        mailboxDir: z.string().min(1).nullable().default(DEFAULT_MAILBOX_DIR),
      })
      .strict()
      .default({}),
    /**
     * Address every service's HTTP port (health, metrics, the admin console and API) binds in `mailgate dev`:
     * loopback, so a laptop on a café network does not serve its console. It replaces each section's `http.host`
     * (an explicit MAILGATE__<SECTION>__HTTP__HOST in the environment still wins). `0.0.0.0` exposes them.
     */
    httpHost: z.string().min(1).default('127.0.0.1'),
    /** Services to run (default: every installed one). */
    services: z.array(z.string()).optional(),
    /**
     * Run these check stages as one stage chain process (`mailgate chain …`, docs/architecture.md "Deployment
     * shapes") instead of one process each, e.g. [dnsbl-check, virus-scan, attachment-policy, spam-check] (what
     * `mailgate dev --chain` sets). Consecutive stages in pipeline order. null = the split shape, one process per
     * stage.
     */
    chain: z
      .array(z.enum(CHAINABLE_STAGES))
      .nullable()
      .default(null)
      .superRefine((stages, ctx) => {
        const problem = stages && chainProblem(stages);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      }),
  })
  .strict()
  .default({});

export type DevConfig = z.infer<typeof devSchema>;
