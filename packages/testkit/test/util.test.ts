import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { freePort, startRedis, testTlsCert, waitFor } from '../src/index.js';

test('freePort returns a bindable port', async () => {
  const port = await freePort();
  assert.ok(port > 1024 && port < 65536);
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  assert.ok((await freePort('127.0.0.12')) > 0);
});

test('waitFor polls until truthy, times out with the last error', async () => {
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? 'done' : false), { intervalMs: 5 }), 'done');
  await assert.rejects(
    waitFor(
      () => {
        throw new Error('still broken');
      },
      { timeoutMs: 100, intervalMs: 10, message: 'thing' },
    ),
    /timed out after 100 ms \(thing\); last error: still broken/,
  );
});

test('testTlsCert is generated once and cached', () => {
  const a = testTlsCert();
  assert.equal(testTlsCert(), a);
  assert.equal(a.source, 'openssl');
});

test('a server that fails to start reports its output tail', async () => {
  await assert.rejects(startRedis({ extraArgs: ['--no-such-directive', 'x'] }), (err: Error) => {
    assert.match(err.message, /redis-server:\d+: exited before it was ready/);
    assert.match(err.message, /no-such-directive/);
    return true;
  });
});

for (const how of ['crash', 'sigkill', 'forgot-stop'] as const) {
  test(`children are cleaned up when the test process dies (${how})`, async () => {
    const script = `
    import { startRedis } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
    const r = await startRedis();
    console.log(JSON.stringify({ pid: r.pid, dir: r.dir }));
    if (${JSON.stringify(how)} === 'sigkill') process.kill(process.pid, 'SIGKILL');
    if (${JSON.stringify(how)} !== 'forgot-stop') throw new Error('test crashed');
  `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=mailgate-src', '--input-type=module', '-e', script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code === 0, how === 'forgot-stop'); // a forgotten server does not keep the process alive
    const info = JSON.parse(out.trim().split('\n').pop()!) as { pid: number; dir: string };
    const alive = (): boolean => {
      try {
        process.kill(info.pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => !alive(), { timeoutMs: 3000, message: `redis pid ${info.pid} still alive` });
    if (how !== 'sigkill') assert.equal(existsSync(info.dir), false);
    else rmSync(info.dir, { recursive: true, force: true }); // a SIGKILLed process cannot remove its temp dirs
  });
}
