// The dev mailbox: `mailgate dev`'s SMTP sink saves every accepted message as <X-Mailgate-Id>.eml (a real SMTP
// session with the real sink), and the admin lists and previews that directory — API, console HTML, Chromium.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { createLogger } from '@mailgate/runtime';
import { sendMail } from '@mailgate/testkit';
import type { Browser } from 'playwright-core';
import { devSchema } from '../../../packages/cli/src/dev-config.js';
import {
  DEFAULT_MAILBOX_DIR,
  mailgateIdOf,
  saveToMailbox,
  startDevSink,
} from '../../../packages/cli/src/dev-mailbox.js';
import { registerDevMailbox } from '../src/dev-mailbox.js';
import { ARTIFACTS, chromiumSkip, launchChromium, signedInPage } from './chromium.js';
import { READ_TOKEN, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MGID = '01JDEVMAILBOX0000000000001';

/** A message as delivery hands it to the internal mail server: with X-Mailgate-Id, an HTML part with a script. */
const delivered = (id = MGID) =>
  [
    `Received: from mailgate by internal-mail.dev`,
    `X-Mailgate-Id: ${id}`,
    'From: Alice <alice@partner.test>',
    'To: user@example.test',
    'Subject: Quarterly numbers',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Numbers attached.',
    '--alt',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Numbers</p><script>window.pwned=1</script>',
    '--alt--',
    '',
  ].join('\r\n');

describe('dev mailbox', () => {
  let dir: string;
  let env: AdminEnv;
  let browser: Browser | undefined;
  const teardown = suiteTeardown();
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mg-devbox-'));
    teardown.last(() => rm(dir, { recursive: true, force: true }));
    env = await startAdminEnv(teardown, { devMailboxDir: dir });
  });

  test('dev.sink.mailboxDir defaults under the OS temporary directory; null turns it off', () => {
    assert.equal(devSchema.parse({}).sink.mailboxDir, DEFAULT_MAILBOX_DIR);
    assert.ok(DEFAULT_MAILBOX_DIR.startsWith(os.tmpdir()));
    assert.equal(devSchema.parse({ sink: { mailboxDir: null } }).sink.mailboxDir, null);
  });

  test('the sink saves each accepted message as <X-Mailgate-Id>.eml before its 250, with the envelope', async () => {
    const childEnv: NodeJS.ProcessEnv = {};
    const { sink, mailboxDir, close } = await startDevSink(
      { enabled: true, host: '127.0.0.1', port: 0, mailboxDir: dir },
      { log: createLogger('dev', 'silent'), childEnv },
    );
    teardown.after(close);
    assert.equal(mailboxDir, dir);
    assert.equal(childEnv['MAILGATE__ADMIN__DEV_MAILBOX_DIR'], dir, 'dev tells the admin where the mailbox is');

    const reply = await sendMail({
      host: sink.host,
      port: sink.port,
      from: 'alice@partner.test',
      to: ['user@example.test', 'hidden-bcc@example.test'],
      raw: delivered(),
    });
    assert.match(reply, /^250/);
    // Saved before the 250: no waiting.
    const saved = await readFile(path.join(dir, `${MGID}.eml`));
    const text = saved.toString('utf8');
    assert.ok(
      text.startsWith(
        'Return-Path: <alice@partner.test>\r\nDelivered-To: user@example.test\r\nDelivered-To: hidden-bcc@example.test\r\n',
      ),
      text.slice(0, 200),
    );
    assert.ok(text.endsWith(delivered()), 'the message bytes follow unchanged');

    // The same message delivered again (another recipient domain, a retry): a second file, never overwritten.
    await sendMail({
      host: sink.host,
      port: sink.port,
      from: 'alice@partner.test',
      to: 'x@example.test',
      raw: delivered(),
    });
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, [`${MGID}-2.eml`, `${MGID}.eml`], 'no temporary file is left');
  });

  test('mailgateIdOf reads the header block only; a message without one still gets a file', async () => {
    assert.equal(mailgateIdOf(Buffer.from(`Subject: x\r\nX-Mailgate-Id: ABC-1\r\n\r\nbody`)), 'ABC-1');
    assert.equal(mailgateIdOf(Buffer.from(`Subject: x\r\n\r\nX-Mailgate-Id: ABC-1\r\n`)), undefined, 'body line');
    assert.equal(mailgateIdOf(Buffer.from(`X-Mailgate-Id: ../../etc\r\n\r\n`)), undefined, 'not an id');
    const other = await mkdtemp(path.join(os.tmpdir(), 'mg-devbox-noid-'));
    teardown.last(() => rm(other, { recursive: true, force: true }));
    const name = await saveToMailbox(other, {
      mailFrom: '',
      mailFromArgs: false,
      rcptTo: ['postmaster@example.test'],
      data: Buffer.from('Subject: no id\r\n\r\nhi\r\n'),
      receivedAt: new Date(1_700_000_000_000),
      secure: false,
      remoteAddress: '127.0.0.1',
      heloName: 'x',
      localAddress: '127.0.0.1',
    });
    assert.equal(name, 'no-id-1700000000000.eml');
  });

  test('API: lists the mailbox newest first, previews as text, downloads; admin role only', async () => {
    // A stray file that is not a message of the sink's naming is not listed.
    await writeFile(path.join(dir, 'notes.txt'), 'x');
    const list = await env.api('/api/v1/dev/mailbox');
    assert.equal(list.status, 200);
    const body = (await list.json()) as Json;
    assert.equal(body['dir'], dir);
    const ids = (body['results'] as Json[]).map((r) => r['id']);
    assert.deepEqual(ids.sort(), [MGID, `${MGID}-2`].sort());
    const first = (body['results'] as Json[]).find((r) => r['id'] === MGID)!;
    assert.equal(first['subject'], 'Quarterly numbers');
    assert.equal(first['from'], 'Alice <alice@partner.test>');
    assert.deepEqual(first['deliveredTo'], ['user@example.test', 'hidden-bcc@example.test']);

    const one = (await (await env.api(`/api/v1/dev/mailbox/${MGID}`)).json()) as Json;
    assert.deepEqual(
      (one['texts'] as Json[]).map((t) => t['contentType']),
      ['text/plain', 'text/html'],
    );
    assert.match(one['texts'][1]['text'], /<script>window\.pwned=1<\/script>/);
    const raw = await env.api(`/api/v1/dev/mailbox/${MGID}/raw`);
    assert.equal(raw.headers.get('content-type'), 'message/rfc822');
    assert.ok(
      Buffer.from(await raw.arrayBuffer())
        .toString()
        .endsWith(delivered()),
    );

    assert.equal((await env.api('/api/v1/dev/mailbox', { token: READ_TOKEN })).status, 403);
    assert.equal((await env.api('/api/v1/dev/mailbox/NOPE')).status, 404);
    assert.equal((await env.api('/api/v1/dev/mailbox/..%2F..%2Fetc%2Fpasswd')).status, 400);
    const doc = (await (await env.api('/openapi.json')).json()) as Json;
    assert.ok(doc['paths']['/api/v1/dev/mailbox']['get']);
  });

  test('not configured: 404 and no "Dev mailbox" link in the console', async () => {
    const app = Fastify();
    teardown.after(() => app.close());
    app.addHook('onRequest', async (req) => {
      req.principal = { name: 'alice', token: 'x', role: 'admin' };
    });
    registerDevMailbox(app, {});
    const r = await app.inject({ url: '/api/v1/dev/mailbox' });
    assert.equal(r.statusCode, 404);
    assert.match(r.body, /not configured/);
    assert.equal((await app.inject({ url: '/console/dev-mailbox' })).statusCode, 404);
    // …while the configured admin's pages carry the link.
    const page = await (await env.api('/console/messages')).text();
    assert.match(page, /href="\/console\/dev-mailbox"/);
  });

  describe('in headless Chromium', { skip: chromiumSkip }, () => {
    before(async () => {
      browser = await launchChromium();
      teardown.after(() => browser!.close());
    });

    test('the Dev mailbox page lists the delivered message and previews its HTML as text', async () => {
      const { page, cspViolations, pageErrors } = await signedInPage(browser!, env.url);
      await page.click('#nav-dev-mailbox');
      await page.waitForURL(/\/console\/dev-mailbox$/);
      const row = page.locator(`#dev-mailbox tr[data-id="${MGID}"]`);
      assert.match((await row.textContent()) ?? '', /Quarterly numbers/);
      await row.locator('a').click();
      await page.waitForURL(new RegExp(`/console/dev-mailbox/${MGID}$`));
      assert.match((await page.textContent('pre[data-type="text/html"]')) ?? '', /<script>window\.pwned=1<\/script>/);
      assert.equal(await page.evaluate('typeof window.pwned'), 'undefined');
      await page.screenshot({ path: path.join(ARTIFACTS, 'console-dev-mailbox.png'), fullPage: true });
      assert.deepEqual(cspViolations, []);
      assert.deepEqual(pageErrors, []);
      await page.close();
    });
  });
});
