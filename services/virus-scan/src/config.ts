import { MAIL_HEADERS } from '@mailgate/contracts';
import { busSchema, httpSchema } from '@mailgate/runtime';
import { z } from 'zod';
import { DEFAULT_SESSION_WAIT_MS, DEFAULT_SESSIONS_PER_ENDPOINT } from './clamd/pool.js';
import { parseClamdSize } from './clamd/protocol.js';

const size = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  try {
    return parseClamdSize(v);
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
    return z.NEVER;
  }
});

const endpointSchema = z.union([
  z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }).strict(),
  z.object({ socket: z.string().min(1) }).strict(),
]);

/**
 * The `virusScan:` section. Every option has a default; the defaults fail closed (nothing passes unscanned).
 * docs/virus-scan.md documents each option.
 */
export const virusScanSchema = z
  .object({
    http: httpSchema('virus-scan'),
    /** Per-stage overrides of the common `bus:` section (concurrency, retry backoff). */
    bus: busSchema.removeDefault().partial().optional(),
    clamd: z
      .object({
        /** clamd instances, TCP `{ host, port }` or Unix `{ socket }`; scans go to the least busy healthy one. */
        endpoints: z
          .array(endpointSchema)
          .min(1)
          .default([{ host: '127.0.0.1', port: 3310 }]),
        connectTimeoutMs: z.number().int().positive().default(2000),
        /** Longest silence on a connection (sending, or waiting while clamd scans) before it counts as failed. */
        readTimeoutMs: z.number().int().positive().default(60_000),
        /** Background PING interval per endpoint (health, failback). */
        healthIntervalMs: z.number().int().positive().default(5000),
        /**
         * Long-lived clamd IDSESSION connections kept per endpoint, one scan at a time each (saves a connect per
         * scan); a scan that finds every session of every endpoint busy waits for the first to come free on any of
         * them (first come, first served; at most sessionWaitMs). 0 = one connection per scan.
         */
        sessionsPerEndpoint: z.number().int().min(0).max(64).default(DEFAULT_SESSIONS_PER_ENDPOINT),
        /**
         * How long one message's scans (the whole message, then each attachment) wait for a session in all, on all
         * endpoints together, when all are busy; then the scan fails as `busy`: tempfail, the message is held and
         * retried with backoff (never passed, even with failOpen: load is not an outage). Not readTimeoutMs (a
         * silence limit): while a scan waits the stage holds its Kafka records, so a burst beyond the clamds'
         * capacity should turn into retries within seconds, not stall consumption for a minute. 0 = never wait.
         */
        sessionWaitMs: z.number().int().min(0).max(600_000).default(DEFAULT_SESSION_WAIT_MS),
        /** INSTREAM chunk size. */
        chunkBytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(256 * 1024),
        /**
         * What the clamds accept (their `StreamMaxLength`; same notation: bytes or 25M). A larger message is
         * not sent; it gets `actions.tooLarge`. Keep it ≤ clamd's value (if clamd refuses first, same outcome).
         */
        // Default above the 50 MiB message limit: with clamd's own StreamMaxLength set as documented (≥ 64M) every
        // accepted message can be scanned; a smaller clamd limit still yields the explicit too-large outcome.
        streamMaxLength: size.default('64M'),
      })
      .strict()
      .default({}),
    /**
     * Also scan, after the whole message scanned clean, each part the attachment policy judges (every reading of
     * it: @mailgate/mail scanTargets), decoded, on its own. On by default: clamd's MIME parser may read a malformed
     * message differently from the user's client and from the policy.
     */
    scanAttachmentsSeparately: z.boolean().default(true),
    /**
     * When no clamd answers: pass the message on with a warning header instead of holding it. Off by default
     * (fail closed); every fail-open pass is logged at error level and counted.
     */
    failOpen: z.boolean().default(false),
    /**
     * How long a message is held and retried while no clamd answers before it is quarantined as
     * "unscannable". Default: the common `bus.maxHoldMs` (4 h). Overrides `virusScan.bus.maxHoldMs`.
     */
    maxHoldMs: z.number().int().positive().optional(),
    actions: z
      .object({
        /** A virus (or a heuristic listed in `heuristics`) was found. */
        infected: z.enum(['quarantine', 'reject']).default('quarantine'),
        /** Larger than `clamd.streamMaxLength` (or clamd's own limits). `pass` only with `failOpen: true`. */
        tooLarge: z.enum(['quarantine', 'reject', 'tempfail', 'pass']).default('quarantine'),
        /** Held for `maxHoldMs` without any clamd answering. */
        unscannable: z.enum(['quarantine', 'reject']).default('quarantine'),
      })
      .strict()
      .default({}),
    /**
     * Heuristic detections (names starting `Heuristics.` or `PUA.`) that count as infected, as patterns with
     * `*` wildcards, e.g. `Heuristics.Encrypted.*`. Others are recorded and ignored. clamd only reports
     * what its own clamd.conf enables (AlertEncrypted, DetectPUA, ...). Default: all of them.
     */
    heuristics: z.array(z.string().min(1)).default(['Heuristics.*', 'PUA.*']),
    header: z
      .object({
        /** Header prepended with the result and engine/database version; any copy already present is removed. */
        name: z
          .string()
          .regex(/^[!-9;-~]+$/, 'not a valid header field name')
          .default(MAIL_HEADERS.virusScanned),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.actions.tooLarge === 'pass' && !c.failOpen) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['actions', 'tooLarge'],
        message: "'pass' lets unscanned mail through: allowed only with virusScan.failOpen: true",
      });
    }
    if (c.maxHoldMs !== undefined && c.bus?.maxHoldMs !== undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['bus', 'maxHoldMs'],
        message: 'set virusScan.maxHoldMs or virusScan.bus.maxHoldMs, not both',
      });
    }
  })
  // The runner enforces the hold (then calls our onHoldExpired hook): hand it our maxHoldMs.
  .transform((c) => (c.maxHoldMs === undefined ? c : { ...c, bus: { ...c.bus, maxHoldMs: c.maxHoldMs } }))
  .default({});

export type VirusScanConfig = z.output<typeof virusScanSchema>;
export type VirusScanInput = z.input<typeof virusScanSchema>;
