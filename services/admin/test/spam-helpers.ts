// What the spam-learning tests share (spam-learn.test.ts: API and CLI; spam-console.test.ts: the console in
// Chromium): learnable texts, a message as spam-check quarantines it, and a real rspamd (Bayes in a real Redis)
// next to the admin service.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PipelineMessage } from '@mailgate/contracts';
import { startRedis, startRspamd, textMessage, type RedisHandle, type RspamdHandle } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { auditLines, startAdminEnv, testEnvelope, type AdminEnv } from './helpers.js';

let seq = 0;
/** A distinct, learnable text message (rspamd refuses to learn messages with too few tokens). */
export function learnableText(kind: 'ham' | 'spam'): { subject: string; raw: string } {
  const n = `${Date.now()}-${++seq}`;
  const subject = kind === 'ham' ? `Quarterly figures ${n}` : `You WON ${n}`;
  const body =
    kind === 'ham'
      ? `Hi Bob,\r\n\r\nthe quarterly figures (${n}) are in the shared folder. Let us go through the budget ` +
        'review with the team on Thursday at ten and agree on the hiring plan for the next quarter.\r\n\r\nAlice'
      : `CONGRATULATIONS!!! You have WON (${n}) a FREE prize. Claim your cash reward now, limited offer, act ` +
        'today: click here to get cheap pills, casino bonus and guaranteed income from home!!!\r\n';
  const from = kind === 'ham' ? 'alice@partner.test' : 'winner@lottery.test';
  const raw = textMessage({ from, to: 'bob@example.test', subject, messageId: `${n}@mailgate.test`, body });
  return { subject, raw };
}

/** learnableText's bytes. */
export const learnableMail = (kind: 'ham' | 'spam'): Buffer => Buffer.from(learnableText(kind).raw);

/** A message as the spam-check stage quarantines it (after dnsbl-check, virus-scan and attachment-policy passed). */
export function spamQuarantined(
  raw: Buffer,
  opts: { reason?: string; details?: Record<string, unknown> } = {},
): PipelineMessage {
  const base = testEnvelope(raw, { from: 'alice@partner.test', to: 'bob@example.test' });
  const at = new Date().toISOString();
  const pass = (stage: 'dnsbl-check' | 'virus-scan' | 'attachment-policy') => ({
    stage,
    verdict: { kind: 'pass' as const },
    at,
    durationMs: 1,
    host: 'x-0',
  });
  return {
    envelope: {
      ...base,
      verdicts: [
        pass('dnsbl-check'),
        pass('virus-scan'),
        pass('attachment-policy'),
        {
          stage: 'spam-check' as const,
          verdict: {
            kind: 'quarantine' as const,
            reason: opts.reason ?? 'spam score 11.2 ≥ 10 (BAYES_SPAM, R_LOTS_OF_CAPS)',
          },
          at,
          durationMs: 30,
          host: 'spam-0',
          ...(opts.details ? { details: opts.details } : {}),
        },
      ],
    },
    raw,
  };
}

export interface SpamEnv {
  readonly env: AdminEnv;
  readonly redis: RedisHandle;
  readonly rspamd: RspamdHandle;
  /** Learned per class, from rspamd's Bayes state in its Redis (the `RS` hash; /stat refreshes it on a timer). */
  learns(cls: 'ham' | 'spam'): Promise<number>;
  /** The audit log as `who action target` lines. */
  audit(): Promise<string[]>;
}

/**
 * A Redis of its own, rspamd learning into it and the admin service talking to rspamd's controller with its
 * password given inline, from a file (as a Kubernetes Secret provides it), or wrong. Stopped by `t.after`.
 */
export async function startSpamEnv(
  t: { after: (fn: () => Promise<void>) => void },
  password: 'inline' | 'file' | 'wrong' = 'inline',
): Promise<SpamEnv> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const rspamd = await startRspamd({ redis: { host: redis.host, port: redis.port } });
  t.after(() => rspamd.stop());
  let secret: { password: string } | { passwordFile: string } = {
    password: password === 'wrong' ? 'wrong-password' : rspamd.password,
  };
  if (password === 'file') {
    const passwordFile = join(tmpdir(), `mailgate-rspamd-pw-${process.pid}`);
    writeFileSync(passwordFile, rspamd.password + '\n', { mode: 0o600 });
    secret = { passwordFile };
  }
  const env = await startAdminEnv(t, {
    rspamd: { controllerUrl: `http://${rspamd.host}:${rspamd.controllerPort}`, ...secret },
  });
  return {
    env,
    redis,
    rspamd,
    learns: async (cls) => {
      const r = new Redis(redis.port, redis.host);
      try {
        return Number((await r.hget('RS', `learns_${cls}`)) ?? 0);
      } finally {
        r.disconnect();
      }
    },
    audit: () => auditLines(env),
  };
}
