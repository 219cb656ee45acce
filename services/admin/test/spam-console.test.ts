// The console's spam-learning buttons in headless Chromium (Debian `chromium` driven by playwright-core) against a
// real rspamd (Bayes in a real Redis), the real admin service and kafka-lite: "Release as not spam" on a message
// spam-check quarantined trains ham and releases it, "Mark as spam" on a delivered message trains spam from the
// pasted source; both behind a confirmation page, admin only, audited. The message view shows the spam-check score,
// SCL and top symbols (and the API returns them). Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { decodeMessage, TOPICS, type PipelineMessage, type TrackingEvent } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, chromiumSkip, launchChromium, signedInPage } from './chromium.js';
import { ADMIN_TOKEN, eventsFor, quarantinedMessage, READ_TOKEN, suiteTeardown, type AdminEnv } from './helpers.js';
import { learnableText as text, spamQuarantined, startSpamEnv, type SpamEnv } from './spam-helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SPAM_DETAILS = {
  result: 'quarantine',
  score: 11.2,
  scl: 7,
  thresholds: { tag: 6, quarantine: 10, reject: 15 },
  symbols: [
    { name: 'BAYES_SPAM', score: 5.1 },
    { name: 'R_LOTS_OF_CAPS', score: 3.2 },
    { name: 'MISSING_DATE', score: 1 },
  ],
  rspamdAction: 'add header',
};

/** A ham message spam-check quarantined (a false positive), with the tracking events the pipeline writes for it. */
function falsePositive(): { msg: PipelineMessage; events: TrackingEvent[] } {
  const { subject, raw: text0 } = text('ham');
  const raw = Buffer.from(text0);
  const reason = 'spam score 11.2 (BAYES_SPAM(5.1), R_LOTS_OF_CAPS(3.2), MISSING_DATE(1.0)) ≥ quarantine 10.0';
  const msg = spamQuarantined(raw, { reason, details: SPAM_DETAILS });
  const env = msg.envelope;
  const verdict = { kind: 'quarantine' as const, reason };
  const at = env.verdicts.at(-1)!.at;
  const base = {
    messageId: env.id,
    traceId: env.trace.traceId,
    mailFrom: env.mailFrom,
    rcptTo: env.rcptTo,
    clientIp: env.session.clientIp,
  };
  const events: TrackingEvent[] = [
    {
      ...base,
      type: 'received',
      at,
      service: 'ingress-smtp',
      host: 'ingress-0',
      details: { size: raw.length, subject },
    },
    {
      ...base,
      type: 'stage',
      at,
      service: 'spam-check',
      host: 'spam-0',
      details: { stage: 'spam-check', verdict, durationMs: 30, ...SPAM_DETAILS },
    },
    {
      ...base,
      type: 'quarantined',
      at,
      service: 'spam-check',
      host: 'spam-0',
      details: { stage: 'spam-check', verdict },
    },
  ];
  return { msg, events };
}

describe('console spam learning in headless Chromium (real rspamd)', { skip: chromiumSkip }, () => {
  let env: AdminEnv;
  let spam: SpamEnv;
  let browser: Browser;
  const teardown = suiteTeardown();
  before(async () => {
    spam = await startSpamEnv(teardown);
    env = spam.env;
    browser = await launchChromium();
    teardown.after(() => browser.close());
  });

  const learns = (cls: 'ham' | 'spam') => spam.learns(cls);
  const audit = () => spam.audit();
  const signIn = async (token: string) => (await signedInPage(browser, env.url, token)).page;

  test('release as not spam, mark as spam (confirmation pages), spam panel, read-only users not offered', async () => {
    const fp = falsePositive();
    const id = fp.msg.envelope.id;
    const virus = quarantinedMessage({ from: 'eve@bad.test', to: 'bob@example.test' });
    const delivered = quarantinedMessage({ from: 'winner@lottery.test', to: 'bob@example.test' });
    await env.events([...fp.events, ...eventsFor(virus), ...eventsFor(delivered, 'delivered')]);
    await env.quarantine(fp.msg, TOPICS.policyChecked);
    await env.quarantine(virus.msg, TOPICS.scanned);
    await waitFor(
      async () => {
        const q = (await (await env.api('/api/v1/quarantine')).json()) as { results: { id: string }[] };
        const ids = q.results.map((e) => e.id);
        const tracked = await Promise.all(
          [id, delivered.msg.envelope.id].map(async (m) => (await env.api(`/api/v1/messages/${m}`)).status),
        );
        return ids.includes(id) && ids.includes(virus.msg.envelope.id) && tracked.every((s) => s === 200);
      },
      { timeoutMs: 30_000, message: 'quarantined and tracked' },
    );

    // The API lifts the spam-check decision out of the timeline.
    const api = (await (await env.api(`/api/v1/messages/${id}`)).json()) as Json;
    assert.equal(api['spam']['score'], 11.2);
    assert.equal(api['spam']['scl'], 7);
    assert.equal(api['spam']['result'], 'quarantine');
    assert.deepEqual(
      api['spam']['symbols'].map((s: Json) => s['name']),
      ['BAYES_SPAM', 'R_LOTS_OF_CAPS', 'MISSING_DATE'],
    );
    assert.equal(
      ((await (await env.api(`/api/v1/messages/${virus.msg.envelope.id}`)).json()) as Json)['spam'],
      undefined,
      'not seen by spam-check: no spam field',
    );

    const page = await signIn(ADMIN_TOKEN);
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });

    // The message view: score, SCL, top symbols; both learning buttons (held by spam-check).
    await page.goto(`${env.url}/console/messages/${id}`);
    assert.equal(await page.textContent('#spam-result td[data-field="score"]'), '11.2');
    assert.equal(await page.textContent('#spam-result td[data-field="scl"]'), '7');
    assert.equal(await page.textContent('#spam-result td[data-field="result"]'), 'quarantine');
    assert.match((await page.textContent('#spam-symbols')) ?? '', /BAYES_SPAM 5\.1 · R_LOTS_OF_CAPS 3\.2/);
    assert.equal(await page.locator('#not-spam').count(), 1);
    assert.equal(await page.locator('#mark-spam').count(), 1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-spam-panel.png'), fullPage: true });

    // Quarantine list: "Release as not spam" only on spam-check's holds.
    await page.click('header a:has-text("Quarantine")');
    const row = page.locator(`#quarantine tr[data-id="${id}"]`);
    assert.equal(await row.locator('button:has-text("Release as not spam")').count(), 1);
    assert.equal(
      await page
        .locator(`#quarantine tr[data-id="${virus.msg.envelope.id}"] button:has-text("Release as not spam")`)
        .count(),
      0,
      'a virus is never learned as ham',
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-spam-quarantine.png'), fullPage: true });

    // The button asks first; Cancel changes nothing.
    const hamBefore = await learns('ham');
    await row.locator('button:has-text("Release as not spam")').click();
    await page.waitForURL(new RegExp(`/console/quarantine/${id}/not-spam\\??$`));
    assert.match((await page.textContent('main')) ?? '', /learn this message as ham/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-spam-confirm.png'), fullPage: true });
    await page.click('a:has-text("Cancel")');
    await page.waitForURL(/\/console\/quarantine$/);
    assert.equal(await learns('ham'), hamBefore, 'cancel: nothing learned');
    assert.equal(await page.locator(`#quarantine tr[data-id="${id}"]`).count(), 1, 'cancel: still held');

    // Confirmed: rspamd learns ham, the message goes to delivery, both audited.
    await page.locator(`#quarantine tr[data-id="${id}"] button:has-text("Release as not spam")`).click();
    await page.click('#confirm-not-spam');
    await page.waitForSelector('#done');
    assert.match(
      (await page.textContent('#done')) ?? '',
      /released to\s+mailgate\.deliverable; rspamd learned it as ham/,
    );
    assert.equal(await learns('ham'), hamBefore + 1, "rspamd's Bayes learned one ham");
    const [rec] = await env.readTopic(TOPICS.deliverable, 1);
    assert.equal(decodeMessage(rec!.value!).envelope.id, id);
    await page.click('a:has-text("Back to the quarantine")');
    assert.equal(await page.locator(`#quarantine tr[data-id="${id}"]`).count(), 0, 'left quarantine');

    // Mark a delivered message as spam: the gateway has no copy, the admin pastes its source.
    const did = delivered.msg.envelope.id;
    const spamBefore = await learns('spam');
    await page.goto(`${env.url}/console/messages/${did}`);
    assert.equal(await page.locator('#not-spam').count(), 0, 'not held: no "not spam"');
    await page.click('#mark-spam');
    await page.waitForURL(new RegExp(`/console/messages/${did}/mark-spam\\??$`));
    await page.fill('textarea[name=eml]', text('spam').raw);
    await page.screenshot({ path: path.join(ARTIFACTS, 'console-spam-mark.png'), fullPage: true });
    await page.click('#confirm-mark-spam');
    await page.waitForSelector('#done');
    assert.match((await page.textContent('#done')) ?? '', /learned message\s+\S+ as spam \(from the pasted source\)/);
    assert.equal(await learns('spam'), spamBefore + 1, "rspamd's Bayes learned one spam");

    // Mark as spam without a source for a delivered message: the API's 409, shown as a page.
    const r = await fetch(`${env.url}/console/messages/${did}/mark-spam`, {
      method: 'POST',
      headers: {
        cookie: `mailgate_token=${encodeURIComponent(ADMIN_TOKEN)}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'eml=',
    }).then(async (res) => ({ status: res.status, text: await res.text() }));
    assert.equal(r.status, 409);
    assert.match(r.text, /keeps no copy of delivered mail/);

    const a = await audit();
    assert.ok(a.includes(`alice spam.learn-ham ${id}`), a.join('\n'));
    assert.ok(a.includes(`alice quarantine.release ${id}`), a.join('\n'));
    assert.ok(a.includes(`alice spam.learn-spam ${did}`), a.join('\n'));
    assert.deepEqual(cspViolations, []);
    await page.close();

    // A read-only user sees the spam panel but no learning buttons; the confirmation page says why; a POST is 403.
    const held = falsePositive();
    await env.events(held.events);
    await env.quarantine(held.msg, TOPICS.policyChecked);
    const hid = held.msg.envelope.id;
    await waitFor(async () => (await env.api(`/api/v1/quarantine/${hid}`)).status === 200, {
      timeoutMs: 20_000,
      message: 'held',
    });
    const ro = await signIn(READ_TOKEN);
    await ro.goto(`${env.url}/console/quarantine`);
    assert.equal(await ro.locator(`#quarantine tr[data-id="${hid}"]`).count(), 1);
    assert.equal(await ro.locator('button:has-text("Release as not spam")').count(), 0);
    await waitFor(
      async () => {
        await ro.goto(`${env.url}/console/messages/${hid}`);
        return (await ro.locator('#spam-result').count()) === 1;
      },
      { timeoutMs: 20_000, message: 'spam panel for the read-only user' },
    );
    assert.equal(await ro.locator('#not-spam, #mark-spam').count(), 0);
    await ro.goto(`${env.url}/console/quarantine/${hid}/not-spam`);
    assert.match((await ro.textContent('#error')) ?? '', /read-only/);
    assert.equal(await ro.locator('#confirm-not-spam').count(), 0);
    const post = await fetch(`${env.url}/console/quarantine/${hid}/not-spam`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        cookie: `mailgate_token=${encodeURIComponent(READ_TOKEN)}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: '',
    });
    assert.equal(post.status, 403);
    assert.equal((await env.api(`/api/v1/quarantine/${hid}`)).status, 200, 'still held');
    await ro.close();
  });
});
