// The console in headless Chromium (Debian `chromium` driven by playwright-core): sign in, search, open a
// timeline, release a quarantined message with a click, see the audit log. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { TOPICS } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, chromiumSkip, launchChromium } from './chromium.js';
import { ADMIN_TOKEN, eventsFor, quarantinedMessage, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

describe('console in headless Chromium', { skip: chromiumSkip }, () => {
  let env: AdminEnv;
  let browser: Browser;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
    browser = await launchChromium();
    teardown.after(() => browser.close());
  });

  test('sign in, search, timeline, release from quarantine, audit log', async () => {
    const infected = quarantinedMessage({ from: 'bob@partner.test', to: 'ceo@example.test', ip: '198.51.100.7' });
    const clean = quarantinedMessage({ from: 'carol@other.test', to: 'ceo@example.test', ip: '203.0.113.9' });
    const id = infected.msg.envelope.id;
    await env.events([...eventsFor(infected), ...eventsFor(clean, 'delivered')]);
    await env.quarantine(infected.msg, TOPICS.dnsblChecked);
    await waitFor(
      async () => {
        const q = (await (await env.api('/api/v1/quarantine')).json()) as { results: { id: string }[] };
        const m = await env.api(`/api/v1/messages/${clean.msg.envelope.id}`);
        // Both messages' events are indexed (they may sit on different partitions of the events topic).
        const byFrom = (await (await env.api('/api/v1/messages?from=bob@partner.test')).json()) as {
          results: unknown[];
        };
        return q.results.some((e) => e.id === id) && m.status === 200 && byFrom.results.length === 1;
      },
      { timeoutMs: 20_000, message: 'ingested' },
    );

    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    // The Content-Security-Policy must not block anything the console itself uses (its hashed stylesheet).
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    // Not signed in: the console sends us to the login page; a wrong token is refused.
    await page.goto(`${env.url}/console/messages`);
    assert.match(page.url(), /\/console\/login$/);
    await page.fill('input[name=token]', 'wrong-token-wrong-token');
    await page.click('button:has-text("Sign in")');
    assert.match((await page.textContent('main')) ?? '', /Invalid token/);
    await page.goto(`${env.url}/console/login`);
    await page.fill('input[name=token]', ADMIN_TOKEN);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(/\/console\/messages$/);

    // Search by sender.
    await page.selectOption('select[name=field]', 'from');
    await page.fill('input[name=q]', 'bob@partner.test');
    await page.click('button:has-text("Search")');
    await page.waitForURL(/field=from/);
    const rows = page.locator('#messages tr:has(td)');
    assert.equal(await rows.count(), 1);
    assert.match((await rows.first().textContent()) ?? '', /quarantined/);
    // All mail for the recipient, for the screenshot of the list.
    await page.selectOption('select[name=field]', 'rcpt');
    await page.fill('input[name=q]', 'ceo@example.test');
    await page.click('button:has-text("Search")');
    await page.waitForSelector(`#messages a:has-text("${clean.msg.envelope.id}")`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-search.png'), fullPage: true });

    // Open the timeline.
    await page.click(`#messages a:has-text("${id}")`);
    await page.waitForURL(new RegExp(`/console/messages/${id}$`));
    const timeline = (await page.textContent('#timeline')) ?? '';
    for (const s of ['received', 'ingress-smtp', 'dnsbl-check', 'virus-scan', 'quarantined', 'Eicar-Signature'])
      assert.ok(timeline.includes(s), s);
    assert.equal(await page.getAttribute('#trace-link', 'href'), `http://jaeger.test:16686/trace/${infected.traceId}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-timeline.png'), fullPage: true });

    // The quarantine list, then Release (as is) with a click.
    await page.click('header a:has-text("Quarantine")');
    const row = page.locator(`#quarantine tr[data-id="${id}"]`);
    assert.equal(await row.count(), 1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-quarantine.png'), fullPage: true });
    await row.locator('button:has-text("Release")').first().click();
    // A virus: the console names the detection and asks before releasing it as is.
    assert.equal(await page.textContent('#detection'), 'Eicar-Signature');
    await page.click('#confirm-release');
    await page.waitForURL(/\/console\/quarantine$/);
    assert.equal(await page.locator(`#quarantine tr[data-id="${id}"]`).count(), 0, 'left quarantine');
    const [rec] = await env.readTopic(TOPICS.scanned, 1);
    assert.equal(rec?.key?.toString(), id, 'released to the stage after virus-scan');

    // The audit log shows who did it.
    await page.click('header a:has-text("Audit")');
    const audit = (await page.textContent('#audit')) ?? '';
    assert.match(audit, new RegExp(`alice\\s*quarantine\\.release\\s*${id}`));
    // …and the timeline the release.
    await page.goto(`${env.url}/console/messages/${id}`);
    await waitFor(
      async () => {
        await page.reload();
        return ((await page.textContent('#timeline')) ?? '').includes('released');
      },
      { timeoutMs: 20_000, message: 'released event on the timeline' },
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-released.png'), fullPage: true });

    await page.click('header a:has-text("Pipeline")');
    assert.match((await page.textContent('#stats')) ?? '', /virus-scan/);

    // Sign out: the cookie is gone, the console asks for the token again.
    await page.click('#logout');
    await page.waitForURL(/\/console\/login$/);
    await page.goto(`${env.url}/console/quarantine`);
    assert.match(page.url(), /\/console\/login$/);
    // The hashed inline stylesheet applied (the header is dark) and nothing was blocked.
    const headerBg = await page.evaluate<string>("getComputedStyle(document.querySelector('header')).backgroundColor");
    assert.equal(headerBg, 'rgb(29, 35, 48)');
    assert.deepEqual(cspViolations, []);
    await page.close();
  });
});
