// `mailgate dev` supervision with real child processes: a crashed service comes back, with backoff, logged.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { waitFor } from '@mailgate/testkit';
import { Supervisor } from '../src/supervisor.js';

function recordingLog() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, obj: (typeof obj === 'object' ? obj : {}) as Record<string, unknown>, msg: msg ?? '' });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } as never };
}

test('a service killed -9 is restarted with backoff and the restart is logged; stop() ends it for good', async () => {
  const { lines, log } = recordingLog();
  // A "service" that runs until killed and prints its pid.
  const sup = new Supervisor({
    name: 'fake-service',
    command: process.execPath,
    args: ['-e', 'console.log("up " + process.pid); setInterval(() => {}, 1000)'],
    spawnOptions: { stdio: ['ignore', 'pipe', 'inherit'] },
    log,
    initialBackoffMs: 100,
    maxBackoffMs: 400,
    resetAfterMs: 60_000,
  });
  const pids: number[] = [];
  sup.onStart((p) => p.stdout!.on('data', (d: Buffer) => pids.push(Number(/up (\d+)/.exec(d.toString())?.[1]))));
  sup.start();
  await waitFor(() => pids.length === 1, { timeoutMs: 10_000, message: 'first start' });

  const delays: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const p = sup.child!;
    p.kill('SIGKILL');
    await once(p, 'exit');
    await waitFor(() => pids.length === i + 1, { timeoutMs: 10_000, message: `restart ${i}` });
    const exitLine = lines.filter((l) => l.msg === 'service exited: restarting').at(-1)!;
    assert.equal(exitLine.obj['signal'], 'SIGKILL');
    delays.push(Number(exitLine.obj['restartInMs']));
  }
  assert.deepEqual(delays, [100, 200, 400], 'backoff doubles while it keeps crashing, capped');
  assert.equal(sup.restarts, 3);
  assert.equal(lines.filter((l) => l.msg === 'service restarted').length, 3);
  assert.notEqual(pids[3], pids[2], 'a new process');

  const last = sup.child!;
  await sup.stop(2000);
  assert.ok(last.exitCode !== null || last.signalCode !== null, 'stopped');
  assert.equal(sup.child, undefined, 'not restarted after stop()');
  assert.equal(lines.filter((l) => l.msg === 'service exited: restarting').length, 3);
});
