// The chaos run: a paced stream of N messages through the whole stack while every process is crashed (kill -9)
// and restarted in turn, kafka-lite and Redis are killed and restarted on their data (data dir, AOF), clamd is
// stopped for a while and the internal mail server answers 4xx for a while. Then it accounts for every message a
// client got a 250 for: delivered exactly once, or quarantined with a reason. Used by test/e2e/chaos.test.ts
// (reduced, CI) and test/chaos/full.ts (full size).
import { SERVICES, TOPICS } from '@mailgate/contracts';
import { EICAR, groupCaughtUp } from '@mailgate/testkit';
import { buildMessage, header, mailgateId, quarantineList, send, uniq, type QuarantineView } from '../harness/mail.js';
import {
  ACCEPTED_DOMAIN,
  REMOTE_DOMAIN,
  sleep,
  startStack,
  TRUSTED_CLIENT,
  type ServiceName,
  type Stack,
} from '../harness/stack.js';

/** The fields of the admin API's deferred-queue items that the report prints. */
interface DeferredView {
  id: string;
  attempts: number;
  nextAttemptAt: string | null;
  jobState: string | null;
  lastError: string;
}

export interface ChaosOptions {
  /** Messages in the stream. */
  messages: number;
  /** Concurrent SMTP clients. */
  clients?: number;
  /** Seconds the stream is spread over (the fault schedule runs inside it). Default 90. */
  streamSeconds?: number;
  /** How long clamd is down (s). Default 15. */
  clamdDownSeconds?: number;
  /** How long the internal server answers 4xx (s). Default 10. */
  sink4xxSeconds?: number;
  /** Max wait for the pipeline to settle after the stream (s). Default 180. */
  settleSeconds?: number;
  /**
   * Epoch ms by which runChaos must return its report (the caller's test timeout minus time to report): the settle
   * and idle waits end there at the latest, so a slow (loaded) machine yields findings instead of a test timeout.
   */
  deadlineAt?: number;
  /** Every k-th message carries EICAR (must be quarantined). Default 20. */
  eicarEvery?: number;
  /** Every k-th message is outbound (trusted client → remote MX). Default 10. */
  outboundEvery?: number;
  log?: (line: string) => void;
}

interface Sent {
  n: number;
  messageId: string;
  kind: 'inbound' | 'outbound' | 'eicar';
  /** Gateway ids from 250 replies (more than one only if a client retry followed an unanswered attempt). */
  accepted: string[];
  /** Attempts that ended without a final reply (connection lost, timeout): the message may have been taken. */
  unanswered: number;
  refused: string[];
}

export interface ChaosReport {
  messages: number;
  accepted: number;
  notAccepted: number;
  delivered: number;
  quarantined: number;
  quarantineReasons: Record<string, number>;
  missing: string[];
  /**
   * Accepted messages neither delivered nor quarantined because delivery was killed between their pending mark and
   * the remote's answer: deferred under the duplicate rule (not missing; see readHeldByRule), with the mark's time.
   */
  heldByDuplicateRule: { id: string; markedAtS: number }[];
  /** Copies with the same X-Mailgate-Id: when (s since start) and where each arrived, and the tracking timeline. */
  duplicates: { id: string; copies: number; arrivals: string[]; timeline?: string }[];
  /** Extra copies whose Message-ID was accepted twice because the client retried after an unanswered attempt. */
  clientRetryCopies: number;
  eicarDelivered: number;
  unscannedDelivered: number;
  faults: { what: string; atS: number; tookS: number; error?: string }[];
  streamSeconds: number;
  settleSeconds: number;
  attemptsRefused: number;
  /** Attempts that got no final reply (connection refused/reset while ingress or kafka-lite was down); retried. */
  attemptsUnanswered: number;
  wallSeconds: number;
}

export async function runChaos(o: ChaosOptions): Promise<{ report: ChaosReport; stack: Stack }> {
  const log = o.log ?? ((l: string) => console.log(l));
  const t0 = Date.now();
  const since = (): number => Math.round((Date.now() - t0) / 100) / 10;
  const stack = await startStack({
    // Readiness is the signal; on a loaded machine it may take long. Leave the stream and some settle time.
    ...(o.deadlineAt
      ? {
          startTimeoutMs: Math.max(
            120_000,
            o.deadlineAt - Date.now() - (o.streamSeconds ?? 90) * 1000 - Math.min(o.settleSeconds ?? 180, 120) * 1000,
          ),
        }
      : {}),
    config: {
      admin: { tracking: { maxResults: 1000 } },
      // A clamd outage must hold mail, never quarantine it as unscannable within the run.
      virusScan: { clamd: { healthIntervalMs: 500 } },
    },
  });
  log(`stack up in ${since()} s`);
  try {
    const report = await drive(stack, o, log, t0);
    return { report, stack };
  } catch (err) {
    await stack.stop();
    throw err;
  }
}

async function drive(stack: Stack, o: ChaosOptions, log: (l: string) => void, t0: number): Promise<ChaosReport> {
  const clients = o.clients ?? 8;
  const streamMs = (o.streamSeconds ?? 90) * 1000;
  const eicarEvery = o.eicarEvery ?? 20;
  const outboundEvery = o.outboundEvery ?? 10;
  const since = (): number => Math.round((Date.now() - t0) / 100) / 10;
  const sent: Sent[] = [];
  let attemptsRefused = 0;

  // --- the stream ---------------------------------------------------------------------------------------------
  const streamStart = Date.now();
  const interval = streamMs / o.messages;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const n = next++;
      if (n >= o.messages) return;
      const due = streamStart + n * interval;
      if (due > Date.now()) await sleep(due - Date.now());
      const kind: Sent['kind'] =
        n % eicarEvery === eicarEvery - 1 ? 'eicar' : n % outboundEvery === 3 ? 'outbound' : 'inbound';
      const from = kind === 'outbound' ? `alice@${ACCEPTED_DOMAIN}` : `sender${n}@${REMOTE_DOMAIN}`;
      const to = kind === 'outbound' ? `rcpt${n}@${REMOTE_DOMAIN}` : `user${n % 50}@${ACCEPTED_DOMAIN}`;
      const messageId = `<chaos-${n}-${uniq()}@client.test>`;
      const raw = buildMessage({
        from,
        to,
        messageId,
        subject: `chaos ${n}`,
        body: `message ${n}\r\n${'lorem ipsum dolor sit amet '.repeat(40)}\r\n`,
        ...(kind === 'eicar'
          ? { attachments: [{ filename: 'eicar.txt', contentType: 'text/plain', content: Buffer.from(EICAR) }] }
          : {}),
      });
      const s: Sent = { n, messageId, kind, accepted: [], unanswered: 0, refused: [] };
      sent.push(s);
      // A real MTA retries a 4xx or a lost connection later; so do we (bounded).
      for (let attempt = 0; attempt < 120; attempt++) {
        try {
          const r = await send(stack, {
            from,
            to,
            raw,
            timeoutMs: 30_000,
            ...(kind === 'outbound' ? { localAddress: TRUSTED_CLIENT } : {}),
          });
          s.accepted.push(r.id);
          break;
        } catch (e) {
          const f = e as { responseCode?: number; response?: string; message: string };
          if (f.responseCode && f.responseCode >= 500) {
            s.refused.push(f.response ?? f.message);
            break;
          }
          if (f.responseCode) attemptsRefused++;
          // No SMTP reply at all (connection reset / timeout after DATA): the gateway may have taken it.
          else s.unanswered++;
          await sleep(500);
        }
      }
    }
  };
  const stream = Promise.all(Array.from({ length: clients }, () => worker()));

  // --- the faults -----------------------------------------------------------------------------------------------
  const faults: ChaosReport['faults'] = [];
  const fault = async (what: string, fn: () => Promise<void>): Promise<void> => {
    const at = since();
    const start = Date.now();
    try {
      await fn();
      faults.push({ what, atS: at, tookS: (Date.now() - start) / 1000 });
      log(`[${at}s] ${what} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
    } catch (e) {
      faults.push({ what, atS: at, tookS: (Date.now() - start) / 1000, error: (e as Error).message.slice(0, 500) });
      log(`[${at}s] ${what} FAILED: ${(e as Error).message.slice(0, 500)}`);
    }
  };
  const slot = streamMs / 11; // ten faults spread over the stream
  const restarts: Promise<void>[] = [];
  const crash = (name: ServiceName) =>
    fault(`kill -9 ${name}, restart`, async () => {
      const p = stack.proc(name);
      await p.kill();
      await sleep(1000);
      // Don't wait for readiness here: a killed consumer's partitions stay with the dead member until its session
      // times out (kafkajs default 30 s), and the next fault should not wait for that.
      restarts.push(p.start().catch((e: unknown) => log(`restart of ${name} failed: ${(e as Error).message}`)));
      await sleep(500);
    });
  const schedule: (() => Promise<void>)[] = [
    () => crash('dnsbl-check'),
    () => crash('virus-scan'),
    () => crash('attachment-policy'),
    () => crash('delivery'),
    () => crash('ingress-smtp'),
    () => crash('admin'),
    () =>
      fault('kill -9 kafka-lite, restart on its data dir', async () => {
        await stack.kafka.kill();
        await sleep(1000);
        await stack.kafka.restart();
      }),
    () =>
      fault('kill -9 redis-server, restart from its AOF', async () => {
        await stack.redis.kill();
        await sleep(1000);
        await stack.redis.restart();
      }),
    () =>
      fault(`clamd down for ${o.clamdDownSeconds ?? 15} s`, async () => {
        await stack.clamd.kill();
        await sleep((o.clamdDownSeconds ?? 15) * 1000);
        await stack.clamd.restart();
      }),
    () =>
      fault(`internal server answers 451 for ${o.sink4xxSeconds ?? 10} s`, async () => {
        stack.internal.setReply({ stage: 'rcpt', code: 451, message: '4.3.2 chaos: try again later' });
        await sleep((o.sink4xxSeconds ?? 10) * 1000);
        stack.internal.clearReplies();
      }),
  ];
  for (let i = 0; i < schedule.length; i++) {
    const due = streamStart + (i + 0.5) * slot;
    if (due > Date.now()) await sleep(due - Date.now());
    await schedule[i]!();
  }
  await stream;
  const streamSeconds = (Date.now() - streamStart) / 1000;
  log(`[${since()}s] stream done: ${sent.filter((s) => s.accepted.length).length}/${o.messages} accepted`);
  await Promise.all(restarts);
  // Every process must be up again before we judge (a failed restart is a finding, not a silent pass).
  for (const list of stack.services.values()) for (const p of list) if (!p.running) await p.start();

  // --- settle: wait until every accepted id is delivered or quarantined ------------------------------------------
  const settleStart = Date.now();
  const acceptedIds = new Set(sent.flatMap((s) => s.accepted));
  const deliveredCopies = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const sink of [stack.internal, stack.mx1, stack.mx2])
      for (const msg of sink.messages) {
        const id = mailgateId(msg);
        if (id) m.set(id, (m.get(id) ?? 0) + 1);
      }
    return m;
  };
  let quarantine: QuarantineView[] = [];
  let missing: string[] = [];
  // delivery's duplicate rule: a process killed (kill -9 delivery) between a recipient's pending mark (written before
  // DATA) and the remote's answer leaves the outcome unknown, and the message is deferred, durably, in the retry
  // queue with `451 4.4.7 outcome … unknown; not resent before <mark + pendingTtlMs>` (10 min): not lost, not yet
  // delivered. Such a message counts as accounted for only if its mark was written in the 30 s before that kill; a
  // mark from any other moment is a finding (a mark the attempt should have removed).
  const pendingTtlMs = Number(
    (stack.config['delivery'] as Record<string, unknown> | undefined)?.['pendingTtlMs'] ?? 600_000,
  );
  const heldByRule = new Map<string, number>(); // id → when its mark was written (s since start)
  const readHeldByRule = async (): Promise<void> => {
    const kill = faults.find((f) => f.what === 'kill -9 delivery, restart');
    if (!kill) return;
    const killAt = t0 + kill.atS * 1000;
    const list = await stack
      .admin<{ results: DeferredView[] }>('/api/v1/deferred?limit=1000')
      .catch(() => ({ results: [] as DeferredView[] }));
    for (const d of list.results) {
      const m = /^451 4\.4\.7 outcome of an earlier attempt to \S+ unknown; not resent before (\S+)/.exec(d.lastError);
      const markAt = m ? Date.parse(m[1]!) - pendingTtlMs : NaN;
      if (markAt >= killAt - 30_000 && markAt <= killAt + 2000) heldByRule.set(d.id, (markAt - t0) / 1000);
    }
  };
  const settleDeadline = Math.min(Date.now() + (o.settleSeconds ?? 180) * 1000, (o.deadlineAt ?? Infinity) - 15_000);
  let lastLog = 0;
  for (;;) {
    const delivered = deliveredCopies();
    quarantine = await quarantineList(stack, 1000).catch(() => quarantine);
    const q = new Set(quarantine.map((e) => e.id));
    missing = [...acceptedIds].filter((id) => !delivered.has(id) && !q.has(id));
    if (missing.length > 0) {
      await readHeldByRule();
      missing = missing.filter((id) => !heldByRule.has(id));
    }
    if (missing.length === 0 || Date.now() > settleDeadline) break;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`[${since()}s] settling: ${missing.length} of ${acceptedIds.size} not yet delivered or quarantined`);
    }
    await sleep(1000);
  }
  // Before judging duplicates, wait for the positive signal that nothing is left to send: delivery committed every
  // record of its topic and its deferred queue is empty (a late duplicate could only come from one of the two).
  const quietDeadline = Math.min(Date.now() + 60_000, (o.deadlineAt ?? Infinity) - 5000);
  for (;;) {
    const committed = await groupCaughtUp(stack.kafka.brokers, SERVICES.delivery.group, TOPICS.deliverable).catch(
      () => false,
    );
    const deferred = await stack.admin<{ total: number }>('/api/v1/deferred?limit=1').catch(() => undefined);
    if (committed && deferred !== undefined && deferred.total <= heldByRule.size) break;
    if (Date.now() > quietDeadline) {
      log(`[${since()}s] delivery not idle in time (committed: ${committed}, deferred: ${deferred?.total ?? '?'})`);
      // What each deferred message waits on (its bullmq job state and when it is due) tells a stuck retry worker
      // from a retry schedule that is merely long.
      const list = await stack
        .admin<{ results: DeferredView[] }>('/api/v1/deferred?limit=20')
        .catch(() => ({ results: [] as DeferredView[] }));
      for (const d of list.results)
        log(
          `  deferred ${d.id}: attempts ${d.attempts}, next ${d.nextAttemptAt ?? 'held'}, job ${d.jobState ?? 'none'}, last error ${d.lastError.slice(0, 200)}`,
        );
      break;
    }
    await sleep(500);
  }
  const settleSeconds = (Date.now() - settleStart) / 1000;

  const delivered = deliveredCopies();
  const sinkNames = new Map<unknown, string>([
    [stack.internal, 'internal'],
    [stack.mx1, 'mx1'],
    [stack.mx2, 'mx2'],
  ]);
  const duplicates: ChaosReport['duplicates'] = [];
  for (const [id, copies] of delivered) {
    if (copies < 2) continue;
    const arrivals = [stack.internal, stack.mx1, stack.mx2].flatMap((sink) =>
      sink.messages
        .filter((m) => mailgateId(m) === id)
        .map((m) => `${sinkNames.get(sink)}@${((m.receivedAt.getTime() - t0) / 1000).toFixed(1)}s`),
    );
    const view = await stack
      .admin<{ events: { type: string; service: string; host: string; at: string }[] }>(`/api/v1/messages/${id}`)
      .catch(() => undefined);
    const timeline = view?.events
      .map(
        (e) => `${e.type === 'stage' ? e.service : e.type}(${e.host})@${((Date.parse(e.at) - t0) / 1000).toFixed(1)}s`,
      )
      .join(' ');
    duplicates.push({ id, copies, arrivals, ...(timeline ? { timeline } : {}) });
  }
  const allDelivered = [stack.internal, stack.mx1, stack.mx2].flatMap((s) => s.messages);
  const byMessageId = new Map<string, number>();
  for (const m of allDelivered) {
    const mid = header(m.data, 'message-id');
    if (mid) byMessageId.set(mid, (byMessageId.get(mid) ?? 0) + 1);
  }
  let clientRetryCopies = 0;
  for (const s of sent) {
    const c = byMessageId.get(s.messageId) ?? 0;
    if (c > 1 && s.accepted.length + s.unanswered > 1) clientRetryCopies += c - 1;
  }
  const quarantineReasons: Record<string, number> = {};
  const acceptedQuarantine = quarantine.filter((e) => acceptedIds.has(e.id));
  for (const e of acceptedQuarantine) {
    const key = `${e.stage}: ${e.reason.replace(/[0-9A-Z]{26}/g, '<id>').slice(0, 120)}`;
    quarantineReasons[key] = (quarantineReasons[key] ?? 0) + 1;
  }
  const eicarDelivered = allDelivered.filter((m) => m.data.includes(EICAR)).length;
  // Nothing unscanned: every message that passed the pipeline carries a clean virus-scan header (DSNs are generated
  // by delivery after the pipeline and are not scanned).
  const unscannedDelivered = allDelivered.filter(
    (m) => m.mailFrom !== '' && !/^clean/.test(header(m.data, 'x-mailgate-virus-scanned') ?? ''),
  ).length;

  return {
    messages: o.messages,
    accepted: acceptedIds.size,
    notAccepted: sent.filter((s) => s.accepted.length === 0).length,
    delivered: [...acceptedIds].filter((id) => delivered.has(id)).length,
    quarantined: acceptedQuarantine.length,
    quarantineReasons,
    missing,
    heldByDuplicateRule: [...heldByRule].map(([id, markedAtS]) => ({ id, markedAtS })),
    duplicates,
    clientRetryCopies,
    eicarDelivered,
    unscannedDelivered,
    faults,
    streamSeconds,
    settleSeconds,
    attemptsRefused,
    attemptsUnanswered: sent.reduce((a, s) => a + s.unanswered, 0),
    wallSeconds: (Date.now() - t0) / 1000,
  };
}

export function formatReport(r: ChaosReport): string {
  return [
    `messages sent ${r.messages}, accepted (250) ${r.accepted}, never accepted ${r.notAccepted} (retried attempts: ${r.attemptsRefused} answered 4xx, ${r.attemptsUnanswered} without a reply)`,
    `delivered ${r.delivered}, quarantined ${r.quarantined}, missing ${r.missing.length}, deferred under the duplicate rule after the delivery kill ${r.heldByDuplicateRule.length}${r.heldByDuplicateRule.length ? ` (marks at ${r.heldByDuplicateRule.map((h) => `${h.markedAtS.toFixed(1)}s`).join(', ')})` : ''}`,
    `duplicates at the sinks (same X-Mailgate-Id): ${r.duplicates.length}`,
    ...r.duplicates
      .slice(0, 10)
      .map((d) => `  ${d.id} ×${d.copies}: ${d.arrivals.join(', ')}; timeline: ${d.timeline ?? '?'}`),
    `copies from client retries after an unanswered attempt (same Message-ID, new id): ${r.clientRetryCopies}`,
    `EICAR at a sink: ${r.eicarDelivered}; delivered without a clean scan header: ${r.unscannedDelivered}`,
    `quarantine reasons: ${JSON.stringify(r.quarantineReasons)}`,
    `stream ${r.streamSeconds.toFixed(1)} s, settle ${r.settleSeconds.toFixed(1)} s, wall ${r.wallSeconds.toFixed(1)} s`,
    'faults:',
    ...r.faults.map((f) => `  [${f.atS}s] ${f.what} — ${f.tookS.toFixed(1)} s${f.error ? ` ERROR ${f.error}` : ''}`),
  ].join('\n');
}
