import { z } from 'zod';
import { LIST_KINDS, ListEntryError, normalizeValue, type ListEntry } from './entries.js';

/** `ingress.lists`: how replicas follow the live lists, and entries seeded from the config file. */
export const listsConfigSchema = z
  .object({
    /** Use the live lists at all (they need Redis). */
    enabled: z.boolean().default(true),
    /** Version poll interval, ms: the longest a change can take to reach a replica if pub/sub missed it. */
    refreshIntervalMs: z.number().int().min(100).max(5000).default(2000),
    /** Entries from the config file: always in force, read-only through the API (change them here). */
    seed: z
      .array(
        z
          .object({
            kind: z.enum(LIST_KINDS),
            value: z.string().min(1),
            reason: z.string().default('config'),
          })
          .strict()
          .superRefine((e, ctx) => {
            try {
              normalizeValue(e.kind, e.value);
            } catch (err) {
              ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['value'], message: (err as ListEntryError).message });
            }
          }),
      )
      .default([]),
  })
  .strict()
  .default({});

export type ListsConfig = z.infer<typeof listsConfigSchema>;

export function seedEntries(cfg: ListsConfig): ListEntry[] {
  return cfg.seed.map((s) => ({
    kind: s.kind,
    value: normalizeValue(s.kind, s.value),
    reason: s.reason,
    createdBy: 'config',
    createdAt: new Date(0).toISOString(),
    expiresAt: null,
    source: 'config' as const,
  }));
}
