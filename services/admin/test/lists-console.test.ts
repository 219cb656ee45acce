// The console's Lists page against the real admin service (Redis, kafka-lite): over plain HTTP with form posts, and
// in headless Chromium (Debian `chromium` driven by playwright-core). Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, chromiumSkip, launchChromium, signedInPage } from './chromium.js';
import { ADMIN_TOKEN, auditLines, READ_TOKEN, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('console lists page', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
  });

  const cookie = (token: string) => `mailgate_token=${encodeURIComponent(token)}`;
  const form = (p: string, fields: Record<string, string>, token = ADMIN_TOKEN) =>
    fetch(env.url + p, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: cookie(token), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  const view = async (query = '', token = ADMIN_TOKEN) => {
    const r = await fetch(`${env.url}/console/lists${query}`, {
      headers: { cookie: cookie(token) },
      redirect: 'manual',
    });
    return { status: r.status, text: await r.text() };
  };
  const entries = async () =>
    ((await (await env.api('/api/v1/lists')).json()) as Json).results.map((e: Json) => `${e.kind} ${e.value}`);

  test('over HTTP: add with expiry, search, errors as pages, read-only refused, remove, audited', async () => {
    const added = await form('/console/lists/add', {
      kind: 'ip-block',
      value: '203.0.113.66',
      reason: 'INC-42 <script>',
      ttl: '3600',
    });
    assert.equal(added.status, 302);
    assert.equal(added.headers.get('location'), '/console/lists');
    const api = ((await (await env.api('/api/v1/lists?kind=ip-block')).json()) as Json).results;
    assert.equal(api.length, 1);
    assert.equal(api[0].value, '203.0.113.66/32');
    assert.equal(api[0].createdBy, 'alice');
    const ttl = Date.parse(api[0].expiresAt) - Date.now();
    assert.ok(ttl > 3500_000 && ttl <= 3600_000, `expires in ~1h (${ttl} ms)`);

    assert.equal(
      (await form('/console/lists/add', { kind: 'sender-block', value: '@spam.test', reason: '', ttl: '0' })).status,
      302,
    );
    const page = await view();
    assert.equal(page.status, 200);
    assert.match(page.text, /<tr data-kind="ip-block" data-value="203\.0\.113\.66\/32">/);
    assert.match(page.text, /\*@spam\.test[\s\S]*never/);
    assert.ok(page.text.includes('INC-42 &#60;script&#62;'), 'reason is escaped');
    assert.ok(!page.text.includes('<script>'));
    const searched = await view('?kind=ip-block&search=INC-42');
    assert.match(searched.text, /203\.0\.113\.66/);
    assert.doesNotMatch(searched.text, /spam\.test<\/code>/);

    // The API's validation and role check, shown as pages.
    const bad = await form('/console/lists/add', { kind: 'ip-block', value: 'not-an-ip', ttl: '3600' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /id="error"/);
    const ro = await form('/console/lists/add', { kind: 'ip-allow', value: '10.0.0.1', ttl: '0' }, READ_TOKEN);
    assert.equal(ro.status, 403);
    assert.equal((await view('', READ_TOKEN)).status, 200, 'read-only tokens can look');
    assert.equal((await view('', 'not-a-token-not-a-token')).status, 302, 'no token: to the login page');

    const removed = await form('/console/lists/remove', { kind: 'ip-block', value: '203.0.113.66/32' });
    assert.equal(removed.status, 302);
    assert.deepEqual(await entries(), ['sender-block *@spam.test']);
    assert.equal((await form('/console/lists/remove', { kind: 'ip-block', value: '203.0.113.66/32' })).status, 404);
    assert.equal((await form('/console/lists/remove', { kind: 'sender-block', value: '*@spam.test' })).status, 302);

    const audit = await auditLines(env);
    assert.ok(audit.includes('alice lists.add ip-block 203.0.113.66/32'), audit.join('\n'));
    assert.ok(audit.includes('alice lists.remove ip-block 203.0.113.66/32'));
  });

  describe('in headless Chromium', { skip: chromiumSkip }, () => {
    let browser: Browser;
    before(async () => {
      browser = await launchChromium();
      teardown.after(() => browser.close());
    });

    test('block an IP for 24 hours and a sender domain, find them, remove one', async () => {
      const { page } = await signedInPage(browser, env.url);
      await page.click('header a:has-text("Lists")');
      await page.waitForURL(/\/console\/lists$/);

      await page.selectOption('#add-entry select[name=kind]', 'ip-block');
      await page.fill('#add-entry input[name=value]', '2001:db8:66::/48');
      await page.fill('#add-entry input[name=reason]', 'brute force');
      await page.selectOption('#add-entry select[name=ttl]', '86400');
      await page.click('#add');
      await page.waitForSelector('#lists tr[data-value="2001:db8:66::/48"]');
      await page.selectOption('#add-entry select[name=kind]', 'sender-block');
      await page.fill('#add-entry input[name=value]', '*@*.phish.test');
      await page.selectOption('#add-entry select[name=ttl]', '0');
      await page.click('#add');
      await page.waitForSelector('#lists tr[data-kind="sender-block"]');
      const api = ((await (await env.api('/api/v1/lists?kind=ip-block')).json()) as Json).results;
      assert.equal(api[0].reason, 'brute force');
      const ttl = Date.parse(api[0].expiresAt) - Date.now();
      assert.ok(ttl > 86_000_000 && ttl <= 86_400_000, `expires in ~24h (${ttl} ms)`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'console-lists.png'), fullPage: true });

      await page.fill('input[name=search]', 'brute');
      await page.click('#filter');
      await page.waitForURL(/search=brute/);
      assert.equal(await page.locator('#lists tr:has(td)').count(), 1);

      await page.click('#lists tr[data-value="2001:db8:66::/48"] button:has-text("Remove")');
      await page.waitForURL(/\/console\/lists$/);
      assert.equal(await page.locator('#lists tr[data-value="2001:db8:66::/48"]').count(), 0);
      assert.deepEqual(await entries(), ['sender-block *@*.phish.test']);

      // A bad value: the API's message on an error page.
      await page.fill('#add-entry input[name=value]', '300.1.2.3');
      await page.selectOption('#add-entry select[name=kind]', 'ip-allow');
      await page.click('#add');
      assert.ok(((await page.textContent('#error')) ?? '').length > 0);
      await page.close();
    });
  });
});
