import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { httpSchema, isCidr } from '@mailgate/runtime';
import { spamLearnSchema } from './spam-learn-api.js';
import { dashboardSchema } from './dashboard.js';

const tokenSchema = z
  .object({
    /** Who this token is: written in the audit log for every action taken with it. */
    name: z.string().min(1),
    /** The bearer token itself, or… */
    token: z.string().min(16).optional(),
    /** …a file holding it (a Kubernetes Secret mounted as a file). */
    tokenFile: z.string().optional(),
    /** read: search and view; admin: also release, delete, retry. */
    role: z.enum(['read', 'admin']).default('admin'),
  })
  .strict()
  .refine((t) => Boolean(t.token) !== Boolean(t.tokenFile), { message: 'exactly one of token or tokenFile' });

export const adminSchema = z
  .object({
    http: httpSchema('admin'),
    /** API tokens. No token configured = every endpoint but /healthz, /readyz and /metrics refuses (401). */
    tokens: z.array(tokenSchema).default([]),
    tracking: z
      .object({
        /** How long a message's timeline is kept. */
        retentionDays: z.number().positive().default(30),
        /** How long SMTP-time refusals (relay denied, DNSBL, unknown recipient…) are kept; at most retentionDays. */
        refusedRetentionDays: z.number().positive().default(7),
        /** Max results per search. */
        maxResults: z.number().int().positive().max(1000).default(200),
        /**
         * How long the events ingest lets tracking events gather before it writes them (its fetch wait; it also
         * returns once 1 MiB is waiting): the message view lags the pipeline by up to this much, and the admin
         * writes a few large Redis transactions per second instead of one per handful of events.
         */
        ingestBatchMs: z.number().int().min(1).max(5000).default(200),
      })
      .strict()
      .default({}),
    quarantine: z
      .object({
        /** How long quarantined messages are kept before they expire. */
        retentionDays: z.number().positive().default(30),
      })
      .strict()
      .default({}),
    /**
     * Failed authentication (a wrong API token or console login) per client IP, counted in Redis so the limit holds
     * across replicas. Past `max` in a window every request presenting a credential from that IP gets 429 with
     * Retry-After until the window ends. `max: 0` disables it.
     */
    authFailures: z
      .object({
        max: z.number().int().nonnegative().default(10),
        windowSeconds: z.number().int().positive().default(300),
        /** Redis unreachable: 'tempfail' answers 503 to credentialed requests (fail closed), 'allow' skips the check. */
        onRedisError: z.enum(['tempfail', 'allow']).default('tempfail'),
      })
      .strict()
      .default({}),
    /**
     * Reverse proxies (ingress controller, load balancer) whose X-Forwarded-For is believed: the client IP is the
     * right-most address in it that is not itself a trusted proxy. Requests from anyone else use the socket address.
     */
    trustedProxies: z.array(z.string().refine(isCidr, 'expected an IP address or CIDR, e.g. 10.0.0.0/8')).default([]),
    /** Base URL of the tracing UI; the console links each message's trace id to `<traceUiUrl>/trace/<id>` (Jaeger). */
    traceUiUrl: z.string().url().optional(),
    /** The console dashboard's charts (dashboard.ts): hours shown, step, lag sampling interval. */
    dashboard: dashboardSchema,
    /**
     * The dev SMTP sink's mailbox directory (`<X-Mailgate-Id>.eml` files): set by `mailgate dev` from
     * dev.sink.mailboxDir; the console then shows a "Dev mailbox" page (dev-mailbox.ts). Absent in production.
     */
    devMailboxDir: z.string().min(1).optional(),
    /** rspamd controller for "release as not spam" / "mark as spam" (spam-learn-api.ts). Absent: learning off. */
    rspamd: spamLearnSchema.optional(),
  })
  .strict()
  .default({});

export type AdminConfig = z.infer<typeof adminSchema>;

export interface ResolvedToken {
  readonly name: string;
  readonly token: string;
  readonly role: 'read' | 'admin';
}

/** Read token files once at start-up (a missing file is a config error naming the key). */
export function resolveTokens(cfg: AdminConfig): ResolvedToken[] {
  return cfg.tokens.map((t, i) => {
    let token = t.token;
    if (!token && t.tokenFile) {
      try {
        token = readFileSync(t.tokenFile, 'utf8').trim();
      } catch (e) {
        throw new Error(`config error at admin.tokens[${i}].tokenFile: ${(e as Error).message}`);
      }
    }
    return { name: t.name, token: token!, role: t.role };
  });
}
