import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TOPICS, type PipelineMessage } from '@mailgate/contracts';
import {
  freePort,
  isolatedRedisPrefix,
  observeTopics,
  rawSmtp,
  waitFor,
  type RawSmtpClient,
  type TopicObserver,
} from '@mailgate/testkit';

/**
 * The "done when", through `mailgate dev` as a child process (dev.ldap starts the seeded slapd) and real
 * SMTP. Only ingress-smtp and admin run (the stages are not needed to show what happens at RCPT and connect), plus
 * a second ingress-smtp started here against the same Redis: the list change reaches both replicas.
 * Client IPs: 127.0.0.1 ordinary, 127.0.0.5 harvester, 127.0.0.6 blocked through the admin API.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'packages/cli/src/main.ts');
const TOKEN = 'dev-token-0123456789abcdef';

let dev: ChildProcess;
let replica: ChildProcess;
let observer: TopicObserver<PipelineMessage>;
const ports = { ldap: 0, broker: 0, sink: 0, smtp: 0, smtp2: 0, ingressHttp: 0, ingress2Http: 0, admin: 0 };
let output = '';

function mailgate(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const p = spawn(process.execPath, ['--import', 'tsx', '--conditions=mailgate-src', main, ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => void (output = (output + d.toString()).slice(-20_000));
  p.stdout!.on('data', keep);
  p.stderr!.on('data', keep);
  return p;
}

async function healthy(port: number, what: string): Promise<void> {
  await waitFor(
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    { timeoutMs: 120_000, intervalMs: 250, message: `${what} ready; output:\n${output}` },
  );
}

function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

before(async () => {
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MAILGATE__REDIS__KEY_PREFIX: isolatedRedisPrefix('dev-rcpt'),
    MAILGATE__LOGGING__LEVEL: 'warn',
    MAILGATE__INGRESS__LISTENERS__MX__PORT: String(ports.smtp),
    MAILGATE__INGRESS__HTTP__PORT: String(ports.ingressHttp),
    MAILGATE__ADMIN__HTTP__PORT: String(ports.admin),
    // The production tarpit (1 s doubling to 10 s, budget 20) would take three minutes; same mechanism, faster.
    MAILGATE__INGRESS__RECIPIENTS__HARVEST: '{tarpitBaseMs: 100, tarpitFactor: 2, tarpitMaxMs: 400, budget: 20}',
    MAILGATE__INGRESS__LIMITS__MAX_CONNECTIONS_PER_IP: '500',
    MAILGATE__DEV__BROKER__PORT: String(ports.broker),
    MAILGATE__DEV__BROKER__DATA_DIR: 'null',
    MAILGATE__DEV__SINK__PORT: String(ports.sink),
    MAILGATE__DEV__SERVICES: '[ingress-smtp, admin]',
    // Nothing answers here, so dev.ldap (auto) starts the seeded slapd on this port: both replicas use it.
    MAILGATE__INGRESS__RECIPIENTS__SOURCES__DIRECTORY__URL: `ldap://127.0.0.1:${ports.ldap}`,
    MAILGATE__DEV__LDAP__SPAWN: 'auto',
    MAILGATE__DEV__CLAMD__SPAWN: 'never',
    MAILGATE__DEV__RSPAMD__SPAWN: 'never',
  };
  dev = mailgate(['dev', '--config', 'deploy/mailgate.dev.yaml'], env);
  await Promise.all([healthy(ports.ingressHttp, 'dev ingress-smtp'), healthy(ports.admin, 'dev admin')]);
  // A second replica: same file, broker, directory and Redis prefix; its own ports.
  replica = mailgate(['ingress-smtp'], {
    ...env,
    MAILGATE_CONFIG: path.join(root, 'deploy/mailgate.dev.yaml'),
    MAILGATE__KAFKA__BROKERS: `[127.0.0.1:${ports.broker}]`,
    MAILGATE__INGRESS__LISTENERS__MX__PORT: String(ports.smtp2),
    MAILGATE__INGRESS__HTTP__PORT: String(ports.ingress2Http),
  });
  await healthy(ports.ingress2Http, 'second ingress-smtp');
  observer = await observeTopics<PipelineMessage>(`127.0.0.1:${ports.broker}`, [TOPICS.inbound, TOPICS.quarantine]);
});

after(async () => {
  await observer?.stop();
  await Promise.all([stop(replica), stop(dev)]);
});

async function session(port: number, ip = '127.0.0.1'): Promise<RawSmtpClient> {
  const c = await rawSmtp('127.0.0.1', port, 10_000, ip);
  await c.expect(220, 30_000);
  c.send('EHLO client.test');
  await c.expect(250, 30_000);
  return c;
}

async function cmd(c: RawSmtpClient, line: string, timeoutMs = 30_000) {
  c.send(line);
  return c.readReply(timeoutMs);
}

/** The first reply of a new connection from `ip`: 220 greeting or a refusal. */
async function greeting(port: number, ip: string): Promise<string> {
  const c = await rawSmtp('127.0.0.1', port, 10_000, ip);
  try {
    return (await c.readReply(30_000)).raw;
  } finally {
    await c.close();
  }
}

test('a seeded user is accepted; an unknown one gets 550 5.1.1 at RCPT and never reaches the first topic', async () => {
  const c = await session(ports.smtp);
  assert.equal((await cmd(c, 'MAIL FROM:<sender@partner.test>')).code, 250);
  assert.equal((await cmd(c, 'RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await cmd(c, 'RCPT TO:<a.smith+news@example.test>')).code, 250, 'alias (proxyAddresses) + tag');
  const unknown = await cmd(c, 'RCPT TO:<nobody-here@example.test>');
  assert.equal(unknown.raw, '550 5.1.1 <nobody-here@example.test>: recipient unknown');
  assert.equal((await cmd(c, 'DATA')).code, 354);
  c.write('Subject: dev recipients\r\n\r\nhello\r\n.\r\n');
  const queued = await c.expect(250, 30_000);
  const id = /queued as ([0-9A-Z]{26})/.exec(queued.raw)![1]!;
  await cmd(c, 'QUIT');
  await c.close();
  const [rec] = await waitFor(() => (observer.of(id).length > 0 ? observer.of(id) : undefined), {
    timeoutMs: 30_000,
    message: `record ${id} on ${TOPICS.inbound}`,
  });
  assert.deepEqual(rec!.value.envelope.rcptTo, ['alice@example.test', 'a.smith+news@example.test']);
  // A session whose only recipient is unknown cannot send data at all.
  const d = await session(ports.smtp);
  await cmd(d, 'MAIL FROM:<sender@partner.test>');
  assert.equal((await cmd(d, 'RCPT TO:<ghost@example.test>')).code, 550);
  assert.match((await cmd(d, 'DATA')).raw, /^5\d\d /, 'DATA without a recipient is refused');
  await d.close();
  await waitFor(() => observer.caughtUp(), { timeoutMs: 30_000, message: 'observer caught up' });
  assert.ok(
    observer.seen.every((s) => !s.value.envelope.rcptTo.some((r) => /nobody-here|ghost/.test(r))),
    'no record names an unknown recipient',
  );
});

test('a harvest of 200 random addresses from one IP is slowed, then disconnected with 421', async (t) => {
  const c = await session(ports.smtp, '127.0.0.5');
  assert.equal((await cmd(c, 'MAIL FROM:<h@harvester.test>')).code, 250);
  const times: number[] = [];
  let dropped: string | undefined;
  for (let i = 0; i < 200 && !dropped; i++) {
    const t0 = Date.now();
    const r = await cmd(c, `RCPT TO:<${randomBytes(5).toString('hex')}@example.test>`);
    if (r.code === 421) dropped = r.raw;
    else {
      assert.equal(r.code, 550, r.raw);
      times.push(Date.now() - t0);
    }
  }
  t.diagnostic(`unknown-recipient reply times (ms): ${times.join(',')}`);
  assert.match(dropped ?? '', /^421 4\.7\.0 Too many unknown recipients/);
  assert.equal(times.length, 20, 'the budget (20 unknown recipients per IP) ends the harvest');
  // Slowed: the n-th miss waits 100 ms * 2^(n-1), capped at 400 ms (plus the lookup).
  assert.ok(times[0]! >= 90 && times[3]! >= 390 && times[19]! >= 390, `tarpit: ${times.join(',')}`);
  await c.closed;
  // The budget is per IP in Redis: the other replica drops this harvester at its first unknown recipient.
  const d = await session(ports.smtp2, '127.0.0.5');
  await cmd(d, 'MAIL FROM:<h@harvester.test>');
  assert.equal((await cmd(d, 'RCPT TO:<another-guess@example.test>')).code, 421);
  await d.closed;
});

test('an IP blocked through the admin API is refused at connect by both replicas within 5 s, and released at expiry', async (t) => {
  assert.match(await greeting(ports.smtp, '127.0.0.6'), /^220 /);
  const t0 = Date.now();
  const res = await fetch(`http://127.0.0.1:${ports.admin}/api/v1/lists`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'ip-block', value: '127.0.0.6', reason: 'attack now', ttlSeconds: 8 }),
  });
  assert.equal(res.status, 201, await res.text());
  for (const port of [ports.smtp, ports.smtp2]) {
    const refused = await waitFor(
      async () => {
        const g = await greeting(port, '127.0.0.6');
        return g.startsWith('554') ? g : undefined;
      },
      { timeoutMs: 5000, intervalMs: 50, message: `block seen on port ${port} within 5 s` },
    );
    assert.equal(refused, '554 5.7.1 Client host [127.0.0.6] blocked by local policy: attack now');
  }
  const seenWithin = Date.now() - t0;
  t.diagnostic(`block in force on both replicas ${seenWithin} ms after the API call`);
  assert.ok(seenWithin < 5000, `both replicas refused within ${seenWithin} ms`);
  assert.match(await greeting(ports.smtp2, '127.0.0.1'), /^220 /, 'other clients are not affected');
  // Released at expiry (8 s after the add), on both replicas, without anyone removing the entry.
  for (const port of [ports.smtp, ports.smtp2]) {
    await waitFor(async () => (await greeting(port, '127.0.0.6')).startsWith('220'), {
      timeoutMs: 20_000,
      intervalMs: 200,
      message: `released on port ${port}`,
    });
  }
  const released = Date.now() - t0;
  t.diagnostic(`released on both replicas ${released} ms after the API call (ttlSeconds 8)`);
  assert.ok(released >= 7000, 'not released before the expiry');
});
