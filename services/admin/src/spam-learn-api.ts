import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DurableProducer } from '@mailgate/bus';
import { RspamdClient, RspamdNotLearnedError, type LearnResult } from '@mailgate/rspamd';
import type { Logger } from '@mailgate/runtime';
import type { Tracer } from '@opentelemetry/api';
import type { AuditLog } from './audit.js';
import type { QuarantineStore } from './quarantine-store.js';
import { ConflictError, NotFoundError, releaseFromQuarantine } from './release.js';
import type { TrackingStore } from './tracking-store.js';

/**
 * Teaching the spam filter from the admin API (issue 20): rspamd's Bayes classifier (state in rspamd's own Redis
 * backend) learns
 *   - ham when an administrator releases a message the spam-check stage quarantined as "not spam"
 *     (POST /api/v1/quarantine/:id/not-spam: learn_ham, then the ordinary release), and
 *   - spam when an administrator marks a tracked message as spam (POST /api/v1/messages/:id/mark-spam). The bytes
 *     come from the quarantine store when the message is held; mailgate keeps no copy of delivered mail, so for a
 *     delivered message the administrator uploads it (message/rfc822, e.g. the .eml a user reported).
 * Every training action is audited. The controller is reached over its HTTP protocol with its password.
 */

export const spamLearnSchema = z
  .object({
    /** rspamd controller, e.g. http://rspamd:11334 (learning and statistics). */
    controllerUrl: z
      .string()
      .url()
      .refine((u) => new URL(u).protocol === 'http:', { message: 'the rspamd controller speaks plain http://' }),
    /** Controller password (`enable_password`); prefer MAILGATE__ADMIN__RSPAMD__PASSWORD or passwordFile. */
    password: z.string().min(1).optional(),
    /** File holding the password (a Kubernetes Secret mounted as a file). */
    passwordFile: z.string().min(1).optional(),
    /** Deadline of one learn request (rspamd writes to Redis; slower than a scan). */
    timeoutMs: z.number().int().positive().default(30_000),
    /** Largest message accepted as an upload for mark-spam. */
    maxUploadBytes: z
      .number()
      .int()
      .positive()
      .default(50 * 1024 * 1024),
  })
  .strict()
  .refine((c) => !(c.password && c.passwordFile), { message: 'set password or passwordFile, not both' });

export type SpamLearnConfig = z.infer<typeof spamLearnSchema>;

/** The controller client from the config (the password file is read once, at start-up). */
export function spamLearnClient(cfg: SpamLearnConfig): RspamdClient {
  let password = cfg.password;
  if (cfg.passwordFile) {
    try {
      password = readFileSync(cfg.passwordFile, 'utf8').trim();
    } catch (e) {
      throw new Error(`config error at admin.rspamd.passwordFile: ${(e as Error).message}`);
    }
  }
  const u = new URL(cfg.controllerUrl);
  const controller = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
  return new RspamdClient({
    // A learning-only client never scans; the worker endpoint is unused.
    worker: { ...controller },
    controller,
    ...(password ? { password } : {}),
    learnTimeoutMs: cfg.timeoutMs,
  });
}

export interface SpamLearnDeps {
  readonly config?: SpamLearnConfig | undefined;
  readonly quarantine: QuarantineStore;
  readonly tracking: TrackingStore;
  readonly producer: DurableProducer;
  readonly audit: AuditLog;
  readonly host: string;
  readonly tracer?: Tracer;
  readonly log?: Logger;
}

function idOf(req: { params: unknown }): string {
  const { id } = req.params as { id: string };
  if (!ID_RE.test(id)) throw Object.assign(new Error(`malformed id '${id.slice(0, 80)}'`), { http: 400 });
  return id;
}

/** Same rule as api.ts (not imported from it: api.ts → openapi.ts → this module would be a cycle). */
const ID_RE = /^[0-9A-Za-z._-]{1,64}$/;

const learnSummary = (r: LearnResult) => ({ learned: r.learned, alreadyLearned: r.alreadyLearned });

/**
 * rspamd declining to learn (204: too few tokens, or its learn conditions denied because Bayes is already sure) is
 * the administrator's to know, not a failure: 422 with rspamd's words, the reason and what happened instead.
 */
async function notLearned(p: Promise<LearnResult>, consequence: string): Promise<LearnResult> {
  try {
    return await p;
  } catch (err) {
    if (!(err instanceof RspamdNotLearnedError)) throw err;
    const why =
      err.reason === 'too-few-tokens'
        ? ' (too little text for the Bayes classifier)'
        : err.reason === 'conditions-denied'
          ? ' (its learn conditions said no: Bayes most likely already classifies this message that way)'
          : '';
    throw Object.assign(new Error(`${err.message}${why}; ${consequence}`), {
      http: 422,
      reason: err.reason,
    });
  }
}

/** Registers the routes; returns the function that closes the rspamd client (null when learning is off). */
export function registerSpamLearnApi(app: FastifyInstance, d: SpamLearnDeps): (() => void) | null {
  const client = d.config ? spamLearnClient(d.config) : undefined;
  const need = (): RspamdClient => {
    if (!client) {
      throw Object.assign(new Error('spam learning is not configured (admin.rspamd.controllerUrl)'), { http: 503 });
    }
    return client;
  };

  // The raw message for mark-spam: kept as bytes (a spam message is often not valid UTF-8).
  app.addContentTypeParser(
    'message/rfc822',
    { parseAs: 'buffer', bodyLimit: d.config?.maxUploadBytes ?? 50 * 1024 * 1024 },
    (_req, body, done) => done(null, body),
  );

  app.post('/api/v1/quarantine/:id/not-spam', async (req) => {
    const id = idOf(req);
    const rspamd = need();
    const b = (req.body ?? {}) as { recheck?: unknown };
    const recheck = b.recheck === true || b.recheck === 'true';
    const who = req.principal!.name;
    const entry = await d.quarantine.get(id);
    const msg = entry ? await d.quarantine.message(id) : null;
    if (!entry || !msg) throw new NotFoundError(`no quarantined message ${id}`);
    // Training ham from a virus or a blocked file type would teach Bayes the wrong thing: only spam-check's holds.
    if (entry.stage !== 'spam-check') {
      throw new ConflictError(
        `message ${id} was held by ${entry.stage}, not by spam-check; release it without "not spam"`,
      );
    }
    // Learn first: if rspamd cannot learn (down, wrong password) nothing is released and the call can be retried.
    const learned = await notLearned(
      rspamd.learnHam(msg.raw),
      'nothing was released; release it without "not spam" to deliver it untrained',
    );
    await d.audit.record({
      who,
      action: 'spam.learn-ham',
      target: id,
      details: { ...learnSummary(learned), source: 'quarantine', reason: entry.reason },
    });
    const released = await releaseFromQuarantine(d.quarantine, d.producer, id, {
      recheck,
      by: who,
      host: d.host,
      ...(d.tracer ? { tracer: d.tracer } : {}),
    });
    await d.audit.record({
      who,
      action: recheck ? 'quarantine.release-recheck' : 'quarantine.release',
      target: id,
      details: { topic: released.topic, notSpam: true },
    });
    return { released, learned: { class: 'ham', ...learnSummary(learned) } };
  });

  app.post('/api/v1/messages/:id/mark-spam', async (req) => {
    const id = idOf(req);
    const rspamd = need();
    const uploaded = Buffer.isBuffer(req.body) ? req.body : undefined;
    let raw: Buffer | undefined;
    let source: 'quarantine' | 'upload';
    const held = await d.quarantine.message(id);
    if (held) {
      raw = held.raw;
      source = 'quarantine';
    } else {
      if (!(await d.tracking.get(id))) throw new NotFoundError(`no message ${id}`);
      if (!uploaded || uploaded.length === 0) {
        throw new ConflictError(
          `message ${id} is not held by the gateway (mailgate keeps no copy of delivered mail): ` +
            'send the message itself as the request body (content-type message/rfc822)',
        );
      }
      raw = uploaded;
      source = 'upload';
    }
    const learned = await notLearned(rspamd.learnSpam(raw), 'Bayes is unchanged');
    await d.audit.record({
      who: req.principal!.name,
      action: 'spam.learn-spam',
      target: id,
      details: { ...learnSummary(learned), source, size: raw.length },
    });
    return { id, learned: { class: 'spam', source, ...learnSummary(learned) } };
  });

  app.get('/api/v1/spam/stat', async () => {
    const s = await need().stat();
    return { learned: s.learned, scanned: s.scanned, statfiles: s.statfiles };
  });

  return client ? () => client.close() : null;
}

const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const errors = {
  '404': ok('not found'),
  '409': ok('not held by spam-check (not-spam) / no bytes available (mark-spam)'),
  '422': ok('rspamd declined to learn the message (too few tokens, or its learn conditions denied); nothing changed'),
  '502': ok('rspamd refused the controller password'),
  '503': ok('spam learning not configured, or rspamd unreachable'),
};

/** OpenAPI paths of the spam-learning API (merged into openapi.ts). */
export const SPAM_LEARN_OPENAPI_PATHS = {
  '/api/v1/quarantine/{id}/not-spam': {
    post: {
      summary:
        'Release a message quarantined by spam-check as "not spam": rspamd learns it as ham, then it is released',
      parameters: [idParam],
      requestBody: {
        content: { 'application/json': { schema: { type: 'object', properties: { recheck: { type: 'boolean' } } } } },
      },
      responses: {
        '200': ok('{ released: { id, topic, recheck }, learned: { class, learned, alreadyLearned } }'),
        ...errors,
      },
    },
  },
  '/api/v1/messages/{id}/mark-spam': {
    post: {
      summary:
        'Mark a tracked message as spam: rspamd learns it as spam (bytes from quarantine, or the uploaded message)',
      parameters: [idParam],
      requestBody: {
        required: false,
        content: { 'message/rfc822': { schema: { type: 'string', format: 'binary' } } },
      },
      responses: { '200': ok('{ id, learned: { class, source, learned, alreadyLearned } }'), ...errors },
    },
  },
  '/api/v1/spam/stat': {
    get: {
      summary: "rspamd's Bayes statistics (learned messages per statfile)",
      responses: { '200': ok('{ learned, scanned, statfiles: [{ symbol, learned }] }'), '503': errors['503'] },
    },
  },
};
