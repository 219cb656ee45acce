// Human-readable logs: createLogger's pretty format, MAILGATE_LOG_FORMAT over logging.format, and `mailgate --pretty`
// on a real service process (attachment-policy against kafka-lite).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startBroker } from '@mailgate/kafka-lite';
import { createLogger, logFormat } from '@mailgate/runtime';
import { freePort, waitFor } from '@mailgate/testkit';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'packages/cli/src/main.ts');

test('logFormat: MAILGATE_LOG_FORMAT wins over logging.format; json by default; a typo is an error', () => {
  assert.equal(logFormat(undefined, {}), 'json');
  assert.equal(logFormat('pretty', {}), 'pretty');
  assert.equal(logFormat('pretty', { MAILGATE_LOG_FORMAT: 'json' }), 'json');
  assert.equal(logFormat(undefined, { MAILGATE_LOG_FORMAT: 'pretty' }), 'pretty');
  assert.throws(() => logFormat(undefined, { MAILGATE_LOG_FORMAT: 'prety' }), /must be json or pretty/);
});

test('createLogger pretty: one readable line per event with time, level, service, message and fields', async () => {
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const log = createLogger('probe', 'info', sink, 'pretty');
  log.info({ msgId: '01ABC', port: 2525 }, 'message accepted');
  log.debug('not at info level');
  await waitFor(() => text.includes('message accepted'), { timeoutMs: 10_000 });
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: probe: message accepted\n/);
  assert.match(text, /msgId: "01ABC"/);
  assert.doesNotMatch(text, /not at info level|"level"|pid:/);
  // JSON stays the default: what log collectors parse.
  let json = '';
  const jsonSink = new Writable({
    write(chunk, _enc, cb) {
      json += chunk.toString();
      cb();
    },
  });
  createLogger('probe', 'info', jsonSink, 'json').info('plain');
  await waitFor(() => json.includes('plain'), { timeoutMs: 10_000 });
  assert.deepEqual(
    (({ level, service, msg }) => ({ level, service, msg }))(JSON.parse(json) as Record<string, unknown>),
    { level: 'info', service: 'probe', msg: 'plain' },
  );
});

test('mailgate --pretty <service>: the service logs readable lines, not JSON', async (t) => {
  const broker = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
  t.after(() => broker.close());
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MAILGATE')) env[k] = v;
  Object.assign(env, {
    MAILGATE__KAFKA__BROKERS: `[${broker.brokers}]`,
    MAILGATE__ATTACHMENT_POLICY__HTTP__HOST: '127.0.0.1',
    MAILGATE__ATTACHMENT_POLICY__HTTP__PORT: String(await freePort()),
  });
  // --pretty before the command: it takes no value (the command is not read as one).
  const p = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=mailgate-src', main, '--pretty', 'attachment-policy'],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  t.after(() => void p.kill('SIGKILL'));
  await waitFor(() => /attachment-policy: attachment-policy started/.test(err), {
    timeoutMs: 120_000,
    message: `service started (stderr so far: ${err.slice(-500)})`,
  });
  p.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.match(err, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: attachment-policy: /m);
  assert.match(err, /shutdown complete/);
  assert.doesNotMatch(err, /^\{"level"/m);
});
