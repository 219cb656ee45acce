import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { httpSchema } from '@mailgate/runtime';
import { spamLearnSchema } from './spam-learn-api.js';

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
    http: httpSchema(9106),
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
    /** Base URL of the tracing UI; the console links each message's trace id to `<traceUiUrl>/trace/<id>` (Jaeger). */
    traceUiUrl: z.string().url().optional(),
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
