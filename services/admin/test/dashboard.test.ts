// The console dashboard: throughput and rejects per time bucket from the tracking store, lag sampled into Redis,
// drawn by uPlot served by the admin itself (real kafka-lite and Redis; the charts in headless Chromium).
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import type { Browser } from 'playwright-core';
import { ARTIFACTS, chromiumSkip, launchChromium, signedInPage } from './chromium.js';
import { startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MIN = 60_000;

function received(atMs: number): TrackingEvent {
  return {
    type: 'received',
    messageId: newMessageId(),
    at: new Date(atMs).toISOString(),
    service: 'ingress-smtp',
    host: 'ingress-0',
    mailFrom: 'someone@partner.test',
    rcptTo: ['user@example.test'],
    clientIp: '192.0.2.10',
    details: { size: 100 },
  };
}

function refused(atMs: number): TrackingEvent {
  return {
    type: 'refused',
    messageId: newMessageId(),
    at: new Date(atMs).toISOString(),
    service: 'ingress-smtp',
    host: 'ingress-0',
    mailFrom: 'spammer@probe.test',
    rcptTo: ['victim@foreign.test'],
    clientIp: '203.0.113.66',
    details: { reason: 'relay-denied', reply: '550 5.7.1 relaying denied', phase: 'rcpt' },
  };
}

const sum = (xs: (number | null)[]) => xs.reduce<number>((a, b) => a + (b ?? 0), 0);

describe('console dashboard', () => {
  let env: AdminEnv;
  let browser: Browser | undefined;
  const teardown = suiteTeardown();
  const now = Date.now();
  // 3 accepted half an hour ago, 2 accepted 2 h ago, 2 refused 20 minutes ago, 1 accepted 10 h ago (outside 6 h).
  const events = [
    ...[0, 1, 2].map((i) => received(now - 30 * MIN - i * 1000)),
    ...[0, 1].map((i) => received(now - 120 * MIN - i * 1000)),
    ...[0, 1].map((i) => refused(now - 20 * MIN - i * 1000)),
    received(now - 600 * MIN),
  ];
  before(async () => {
    env = await startAdminEnv(teardown);
    await env.events(events);
  });

  const history = async (hours?: number): Promise<Json> => {
    const r = await env.api(`/api/v1/stats/history${hours ? `?hours=${hours}` : ''}`);
    assert.equal(r.status, 200);
    return (await r.json()) as Json;
  };

  test('API: accepted and refused per bucket over the last hours; the lag is sampled', async () => {
    const h = await waitFor(
      async () => {
        const x = await history(12);
        return sum(x['accepted']) === 6 && sum(x['refused']) === 2 ? x : null;
      },
      { timeoutMs: 30_000, message: 'events counted' },
    );
    assert.equal(h['bucketMinutes'], 10);
    assert.equal(h['t'].length, 72, '12 h in 10-minute buckets');
    assert.equal(h['t'][1] - h['t'][0], 600);
    const bucketOf = (ms: number) => (h['t'] as number[]).findLastIndex((t) => t * 1000 <= ms);
    // The counts land in the buckets of their times (two adjacent ones when a burst straddles a boundary).
    const inBuckets = (series: string, times: number[]) =>
      sum([...new Set(times.map(bucketOf))].map((i) => h[series][i] as number));
    assert.equal(inBuckets('accepted', [now - 30 * MIN, now - 30 * MIN - 2000]), 3);
    assert.equal(inBuckets('accepted', [now - 120 * MIN, now - 120 * MIN - 1000]), 2);
    assert.equal(inBuckets('refused', [now - 20 * MIN, now - 20 * MIN - 1000]), 2);
    // Every request samples the lag first: the current bucket has a value (kafka-lite with nothing waiting: 0).
    assert.equal(typeof h['lag'].at(-1), 'number');

    const six = await history();
    assert.equal(six['hours'], 6);
    assert.equal(sum(six['accepted']), 5, 'the one 10 h ago is outside the default 6 h');
    assert.ok(((await (await env.api('/openapi.json')).json()) as Json)['paths']['/api/v1/stats/history']);
  });

  test('the dashboard page: its own CSP allows the local scripts only; assets are served locally, behind auth', async () => {
    const r = await env.api('/console/dashboard');
    assert.equal(r.status, 200);
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    const page = await r.text();
    assert.match(page, /<script src="\/console\/assets\/uPlot\.iife\.min\.js"><\/script>/);
    assert.doesNotMatch(page, /https?:\/\//, 'nothing from another origin');
    // Other console pages keep the script-free policy.
    const other = (await env.api('/console/messages')).headers.get('content-security-policy') ?? '';
    assert.doesNotMatch(other, /script-src/);
    const js = await env.api('/console/assets/uPlot.iife.min.js');
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await js.text(), /uPlot/);
    assert.equal((await env.api('/console/assets/dashboard.js')).status, 200);
    assert.equal((await env.api('/console/assets/..%2Fpackage.json')).status, 404);
    assert.equal((await env.api('/console/assets/dashboard.js', { token: null, redirect: 'manual' })).status, 302);
  });

  describe('in headless Chromium', { skip: chromiumSkip }, () => {
    before(async () => {
      browser = await launchChromium();
      teardown.after(() => browser!.close());
    });

    test('the charts render: a canvas per chart, drawn from the series', async () => {
      const { page, cspViolations, pageErrors } = await signedInPage(browser!, env.url);
      await page.click('header a:has-text("Dashboard")');
      await page.waitForURL(/\/console\/dashboard$/);
      await page.waitForSelector('body[data-charts-ready="3"]');
      for (const id of ['chart-throughput', 'chart-rejects', 'chart-lag']) {
        assert.equal(await page.locator(`#${id} canvas`).count(), 1, `${id} canvas`);
        const box = await page.locator(`#${id} canvas`).boundingBox();
        assert.ok(box && box.width > 300 && box.height > 100, `${id} has a size`);
      }
      const drawn = await page.evaluate(`(() => {
        const c = window.mailgateCharts;
        const s = (id) => c[id].data[1].reduce((a, b) => a + (b ?? 0), 0);
        return { accepted: s('chart-throughput'), refused: s('chart-rejects'), points: c['chart-throughput'].data[0].length };
      })()`);
      assert.deepEqual(drawn, { accepted: 5, refused: 2, points: 36 });
      // The canvas has ink in the plot: not a blank element.
      const inked = await page.evaluate(`(() => {
        const cv = document.querySelector('#chart-throughput canvas');
        const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n;
      })()`);
      assert.ok((inked as number) > 1000, `painted pixels: ${inked}`);
      assert.match((await page.textContent('#chart-throughput')) ?? '', /accepted/, 'legend');
      await page.screenshot({ path: path.join(ARTIFACTS, 'console-dashboard.png'), fullPage: true });
      assert.deepEqual(cspViolations, []);
      assert.deepEqual(pageErrors, []);
      await page.close();
    });
  });
});
