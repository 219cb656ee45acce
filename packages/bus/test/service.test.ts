import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { z } from 'zod';
import { startBroker } from '@mailgate/kafka-lite';
import { pass, TOPICS } from '@mailgate/contracts';
import { defineStageService } from '@mailgate/bus';
import { httpSchema, startService } from '@mailgate/runtime';
import { Kafka, logLevel } from 'kafkajs';
import { producePipelineMessages, readTopic } from '@mailgate/testkit';
import { broker, decoded, log, testMessage } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

async function readyStatus(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return r.status;
}

async function until(fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('condition not met in time');
}

test('/healthz answers; /readyz flips to 503 when the broker stops and back when it returns', async () => {
  let b = await broker();
  const port = b.port;
  const service = defineStageService({
    stage: 'attachment-policy',
    section: 'attachmentPolicy',
    schema: z
      .object({ http: httpSchema(0) })
      .strict()
      .default({}),
    runner: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, groupId: 'g-ready' },
    setup: async () => ({ fn: async () => ({ verdict: pass() }) }),
  });
  const s = await startService(service, { configDocument: { kafka: { brokers: [b.brokers] } }, httpPort: 0, log });
  try {
    const health = await fetch(`http://127.0.0.1:${s.http.port}/healthz`);
    assert.equal(health.status, 200);
    await until(async () => (await readyStatus(s.http.port)) === 200);
    await b.close();
    await until(async () => (await readyStatus(s.http.port)) === 503);
    const body = (await (await fetch(`http://127.0.0.1:${s.http.port}/readyz`)).json()) as {
      checks: Record<string, boolean>;
    };
    assert.equal(body.checks['kafka'], false);
    // Liveness is never tied to dependencies.
    assert.equal((await fetch(`http://127.0.0.1:${s.http.port}/healthz`)).status, 200);
    b = await startBroker({ port, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
    await until(async () => (await readyStatus(s.http.port)) === 200, 60_000);
    const metrics = await (await fetch(`http://127.0.0.1:${s.http.port}/metrics`)).text();
    assert.equal(typeof metrics, 'string');
  } finally {
    await s.stop();
    await b.close();
  }
});

test('SIGTERM drains the in-flight record: its output is produced and its offset committed before exit', async () => {
  const b = await broker();
  try {
    const msg = testMessage('drain me');
    await producePipelineMessages(b.brokers, 'test.in.drain', [msg]);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=mailgate-src', path.join(here, 'fixtures', 'slow-stage.ts'), b.brokers],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('PROCESSING')) resolve();
      });
      child.on('exit', () => reject(new Error(`child exited early: ${out}`)));
    });
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const [result] = await readTopic(b.brokers, TOPICS.scanned, 1);
    assert.equal(decoded(result!).envelope.id, msg.envelope.id);
    const admin = new Kafka({ brokers: [b.brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const offsets = await admin.fetchOffsets({ groupId: 'g-drain', topics: ['test.in.drain'] });
    await admin.disconnect();
    const committed = offsets[0]!.partitions.map((p) => Number(p.offset)).filter((o) => o > 0);
    assert.deepEqual(committed, [1]);
  } finally {
    await b.close();
  }
});
