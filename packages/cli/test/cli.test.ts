import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { freePort, isolatedRedisPrefix, sendMail, waitFor } from '@mailgate/testkit';
import { createLogger } from '@mailgate/runtime';
import { runDev } from '../src/dev.js';
import { runQueue } from '../src/queue.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'packages/cli/src/main.ts');
const node = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', '--conditions=mailgate-src', main, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

test('config check: the dev config is valid; a bad file exits 78 naming the key and the file', () => {
  const ok = node(['config', 'check', '--config', 'deploy/mailgate.dev.yaml']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /is valid/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cli-'));
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'ingress:\n  listeners:\n    mx: { port: "twenty-five" }\n  acceptedDomainz: [x.test]\n');
  const r = node(['config', 'check', '--config', bad]);
  assert.equal(r.status, 78);
  assert.match(
    r.stderr,
    new RegExp(`ingress\\.listeners\\.mx\\.port \\(file ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`),
  );
  assert.match(r.stderr, /ingress\.acceptedDomainz .*unknown key/);
});

test('unknown commands are usage errors (64)', () => {
  const r = node(['frobnicate']);
  assert.equal(r.status, 64);
  assert.match(r.stderr, /unknown command/);
});

test('help: --help and help exit 0; a command with options prints its own; no command at all is 64', () => {
  for (const args of [['--help'], ['help']]) {
    const r = node(args);
    assert.equal(r.status, 0, args.join(' '));
    assert.match(r.stdout, /mailgate — cloud-native email security gateway/);
  }
  const broker = node(['broker', '--help']);
  assert.equal(broker.status, 0);
  assert.match(broker.stdout, /--data-dir/);
  assert.doesNotMatch(broker.stdout, /cloud-native email security gateway/);
  const queue = node(['help', 'queue']);
  assert.equal(queue.status, 0);
  assert.match(queue.stdout, /mailgate queue <command>/);
  const track = node(['track', '--help']);
  assert.equal(track.status, 0);
  assert.match(track.stdout, /--message-id/);
  assert.equal(node([]).status, 64);
});

test('queue list/show against an empty deferred queue', async () => {
  process.env['MAILGATE__REDIS__KEY_PREFIX'] = isolatedRedisPrefix('cli');
  try {
    const out = sink();
    assert.equal(await runQueue(['queue', 'list'], out), 0);
    assert.match(out.text, /^0 deferred/);
    const err = sink();
    assert.equal(await runQueue(['queue', 'show', 'NOPE'], out, err), 1);
    assert.match(err.text, /no deferred message NOPE/);
  } finally {
    delete process.env['MAILGATE__REDIS__KEY_PREFIX'];
  }
});

/** Ports and environment for a `mailgate dev` run on free ports, with clamd and rspamd of its own. */
async function devSetup(extra: NodeJS.ProcessEnv = {}) {
  const ports = {
    broker: await freePort(),
    sink: await freePort(),
    smtp: await freePort(),
    http: await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => freePort())),
  };
  const [ingress, dnsbl, virus, policy, delivery, admin, spam] = ports.http as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const mailbox = mkdtempSync(path.join(os.tmpdir(), 'mg-dev-mailbox-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MAILGATE__REDIS__KEY_PREFIX: isolatedRedisPrefix('dev'),
    MAILGATE__LOGGING__LEVEL: 'warn',
    MAILGATE__BUS__SESSION_TIMEOUT_MS: '6000',
    MAILGATE__BUS__HEARTBEAT_INTERVAL_MS: '500',
    MAILGATE__INGRESS__LISTENERS__MX__PORT: String(ports.smtp),
    MAILGATE__INGRESS__HTTP__PORT: String(ingress),
    MAILGATE__DNSBL__HTTP__PORT: String(dnsbl),
    MAILGATE__VIRUS_SCAN__HTTP__PORT: String(virus),
    MAILGATE__ATTACHMENT_POLICY__HTTP__PORT: String(policy),
    MAILGATE__SPAM_CHECK__HTTP__PORT: String(spam),
    MAILGATE__DELIVERY__HTTP__PORT: String(delivery),
    MAILGATE__ADMIN__HTTP__PORT: String(admin),
    MAILGATE__DEV__BROKER__PORT: String(ports.broker),
    MAILGATE__DEV__BROKER__DATA_DIR: 'null',
    MAILGATE__DEV__SINK__PORT: String(ports.sink),
    MAILGATE__DEV__SINK__MAILBOX_DIR: mailbox,
    MAILGATE__DEV__CLAMD__SPAWN: 'always',
    MAILGATE__DEV__RSPAMD__SPAWN: 'always',
    MAILGATE__DELIVERY__ROUTES: `[{domains: [example.test], type: smarthost, hosts: ['127.0.0.1:${ports.sink}'], tls: none}]`,
    ...extra,
  };
  const http = { ingress, dnsbl, virus, policy, delivery, admin, spam };
  return { ports, http, mailbox, env };
}

test('mailgate dev: broker, every service and a sink come up; a message is delivered end to end', async () => {
  const { ports, http, mailbox, env } = await devSetup();
  const { admin } = http;
  const dev = await runDev({
    configFile: path.join(root, 'deploy/mailgate.dev.yaml'),
    env,
    log: createLogger('dev-test', 'warn'),
  });
  try {
    assert.equal(dev.children.size, 7);
    for (const port of ports.http) {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(r.status, 200);
    }
    const reply = await sendMail({
      host: '127.0.0.1',
      port: ports.smtp,
      from: 'bob@partner.test',
      to: 'user@example.test',
      subject: 'dev smoke',
      text: 'hello from the dev test\n',
    });
    assert.match(reply, /^250 2\.0\.0 Ok: queued as [0-9A-Z]{26}/);
    const token = 'dev-token-0123456789abcdef';
    const delivered = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${admin}/api/v1/messages?rcpt=user@example.test`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = (await r.json()) as { results: { status: string }[] };
        return body.results.find((m) => m.status === 'delivered');
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    assert.ok(delivered);
    // The dev mailbox: the sink saved the message as <X-Mailgate-Id>.eml, and the admin (told by dev) lists it.
    const id = /queued as ([0-9A-Z]{26})/.exec(reply)![1]!;
    assert.ok(readdirSync(mailbox).includes(`${id}.eml`), `${id}.eml in ${mailbox}`);
    const box = (await (
      await fetch(`http://127.0.0.1:${admin}/api/v1/dev/mailbox`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as { dir: string; results: { id: string; subject: string }[] };
    assert.equal(box.dir, mailbox);
    assert.equal(box.results.find((m) => m.id === id)?.subject, 'dev smoke');
  } finally {
    await dev.stop();
    rmSync(mailbox, { recursive: true, force: true });
  }
});

test('mailgate dev with dev.chain (--chain): the check stages run as one chain process; a message is delivered', async () => {
  const { ports, http, mailbox, env } = await devSetup({
    // What `mailgate dev --chain` sets; only the processes the journey needs besides the chain.
    MAILGATE__DEV__CHAIN: '[dnsbl-check, virus-scan, attachment-policy, spam-check]',
    MAILGATE__DEV__SERVICES: '[ingress-smtp, delivery]',
  });
  const dev = await runDev({
    configFile: path.join(root, 'deploy/mailgate.dev.yaml'),
    env,
    log: createLogger('dev-test', 'warn'),
  });
  try {
    assert.deepEqual([...dev.children.keys()].sort(), ['chain', 'delivery', 'ingress-smtp']);
    // The chain serves health on its first stage's port.
    assert.equal((await fetch(`http://127.0.0.1:${http.dnsbl}/readyz`)).status, 200);
    const reply = await sendMail({
      host: '127.0.0.1',
      port: ports.smtp,
      from: 'bob@partner.test',
      to: 'user@example.test',
      subject: 'dev chain smoke',
      text: 'hello through the chain\n',
    });
    const id = /queued as ([0-9A-Z]{26})/.exec(reply)?.[1];
    assert.ok(id, reply);
    await waitFor(() => readdirSync(mailbox).includes(`${id}.eml`), { timeoutMs: 90_000, intervalMs: 250 });
  } finally {
    await dev.stop();
    rmSync(mailbox, { recursive: true, force: true });
  }
});

test('dev.chain must name consecutive check stages: config check exits 78 naming the key', () => {
  const r = node(['config', 'check', '--config', 'deploy/mailgate.dev.yaml'], {
    MAILGATE__DEV__CHAIN: '[virus-scan, dnsbl-check]',
  });
  assert.equal(r.status, 78, r.stderr);
  assert.match(r.stderr, /dev\.chain/);
});
