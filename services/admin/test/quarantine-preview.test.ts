// Quarantine preview and .eml download (admin role, audited) and the confirmation before releasing a virus: the
// MIME reading as a unit, the API against real kafka-lite and Redis, the console in headless Chromium.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { TOPICS, type PipelineMessage } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import type { Browser } from 'playwright-core';
import { previewMessage, virusDetection } from '../src/quarantine-preview.js';
import { ARTIFACTS, chromiumSkip, launchChromium, signedInPage } from './chromium.js';
import { READ_TOKEN, startAdminEnv, suiteTeardown, testEnvelope, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PDF = Buffer.from('%PDF-1.4\n% not really a pdf\n');
const SCRIPT = `<script>window.pwned=1;document.title='pwned'</script>`;

/** A phishing-style message: text and HTML alternatives (the HTML carries a script), a PDF attachment. */
function phishingRaw(): Buffer {
  return Buffer.from(
    [
      'From: Mallory <mallory@evil.test>',
      'To: ceo@example.test',
      'Subject: =?utf-8?q?Rechnung_f=C3=BCr_Sie?=',
      'Message-ID: <inv-42@evil.test>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: multipart/alternative; boundary="b2"',
      '',
      '--b2',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Please pay the invoice.',
      '--b2',
      'Content-Type: text/html; charset=utf-8',
      '',
      `<html><body><b id="bold">Pay now</b>${SCRIPT}<img src="x" onerror="window.pwned=2"></body></html>`,
      '--b2--',
      '--b1',
      'Content-Type: application/pdf; name="invoice.pdf"',
      'Content-Disposition: attachment; filename="invoice.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      PDF.toString('base64'),
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

/** A message as a stage quarantines it; `signature` makes it a virus-scan detection. */
function held(raw: Buffer, opts: { signature?: string; stage?: 'virus-scan' | 'attachment-policy' } = {}) {
  const envelope = testEnvelope(raw, { from: 'mallory@evil.test', to: 'ceo@example.test', ip: '198.51.100.66' });
  const now = new Date().toISOString();
  const stage = opts.stage ?? 'virus-scan';
  const msg: PipelineMessage = {
    envelope: {
      ...envelope,
      verdicts: [
        {
          stage,
          verdict: {
            kind: 'quarantine',
            reason: opts.signature ? `virus found: ${opts.signature}` : 'blocked file type: .pdf',
          },
          at: now,
          durationMs: 5,
          host: 'scan-0',
          details: opts.signature ? { result: 'infected', signatures: [opts.signature] } : {},
        },
      ],
    },
    raw,
  };
  return msg;
}

describe('previewMessage (shared MIME walk)', () => {
  test('headers decoded, text and HTML parts as text, attachment by name, type and decoded size', () => {
    const p = previewMessage(phishingRaw());
    assert.deepEqual(
      p.headers.find((h) => h.name === 'subject'),
      { name: 'subject', value: 'Rechnung für Sie' },
      'RFC 2047 decoded',
    );
    assert.deepEqual(
      p.texts.map((t) => [t.part, t.contentType]),
      [
        ['1.1', 'text/plain'],
        ['1.2', 'text/html'],
      ],
    );
    assert.match(p.texts[0]!.text, /Please pay the invoice\./);
    assert.ok(p.texts[1]!.text.includes(SCRIPT), 'the HTML source, script and all, as text');
    assert.deepEqual(p.attachments, [
      { part: '2', name: 'invoice.pdf', contentType: 'application/pdf', size: PDF.length },
    ]);
    assert.deepEqual(p.problems, []);
  });

  test('malformed MIME: header fields and the reason, no guessing at the body', () => {
    const p = previewMessage(Buffer.from('Subject: broken\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n'));
    assert.deepEqual(p.headers[0], { name: 'subject', value: 'broken' });
    assert.deepEqual(p.texts, []);
    assert.match(p.problems[0]!, /MIME structure cannot be read/);
  });

  test('a long text part is cut and says so', () => {
    const p = previewMessage(Buffer.from(`Subject: long\r\n\r\n${'x'.repeat(500)}\r\n`), {
      maxTextChars: 100,
      maxTexts: 10,
      maxHeaders: 10,
    });
    assert.equal(p.texts[0]!.text.length, 100);
    assert.equal(p.texts[0]!.truncated, true);
  });

  test('virusDetection: signatures from virus-scan details, else from the reason; none for other stages', () => {
    const m = held(Buffer.from('x'), { signature: 'Eicar-Test-Signature' });
    assert.equal(
      virusDetection({ envelope: m.envelope, stage: 'virus-scan', kind: 'quarantine' }),
      'Eicar-Test-Signature',
    );
    const byReason = {
      ...m.envelope,
      verdicts: [{ ...m.envelope.verdicts[0]!, details: {} }],
    };
    assert.equal(
      virusDetection({ envelope: byReason, stage: 'virus-scan', kind: 'quarantine' }),
      'Eicar-Test-Signature',
    );
    const policy = held(Buffer.from('x'), { stage: 'attachment-policy' });
    assert.equal(virusDetection({ envelope: policy.envelope, stage: 'attachment-policy', kind: 'quarantine' }), null);
  });
});

describe('quarantine preview and download (API and console)', () => {
  let env: AdminEnv;
  let browser: Browser | undefined;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
  });

  const json = async (p: string, init?: Parameters<AdminEnv['api']>[1]): Promise<Json> => {
    const r = await env.api(p, init);
    assert.equal(r.status, 200, `${p}: ${r.status} ${await r.clone().text()}`);
    return (await r.json()) as Json;
  };
  const quarantine = async (msg: PipelineMessage) => {
    await env.quarantine(msg, TOPICS.dnsblChecked);
    await waitFor(async () => (await env.api(`/api/v1/quarantine/${msg.envelope.id}`)).status === 200, {
      timeoutMs: 30_000,
      message: `${msg.envelope.id} in quarantine`,
    });
  };
  const audited = async (action: string, target: string) =>
    ((await json('/api/v1/audit')).results as Json[]).filter((a) => a['action'] === action && a['target'] === target);

  const phish = held(phishingRaw(), { stage: 'attachment-policy' });
  const eicar = held(Buffer.from('Subject: test\r\n\r\nX5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR\r\n'), {
    signature: 'Eicar-Test-Signature',
  });

  test('API: preview and .eml download for the admin role only, both audited', async () => {
    await quarantine(phish);
    const id = phish.envelope.id;
    const p = await json(`/api/v1/quarantine/${id}/preview`);
    assert.equal(p['stage'], 'attachment-policy');
    assert.equal(p['texts'][1]['contentType'], 'text/html');
    assert.ok((p['texts'][1]['text'] as string).includes(SCRIPT));
    assert.deepEqual(p['attachments'], [
      { part: '2', name: 'invoice.pdf', contentType: 'application/pdf', size: PDF.length },
    ]);
    const eml = await env.api(`/api/v1/quarantine/${id}/raw`);
    assert.equal(eml.status, 200);
    assert.equal(eml.headers.get('content-type'), 'message/rfc822');
    assert.equal(eml.headers.get('content-disposition'), `attachment; filename="${id}.eml"`);
    assert.deepEqual(Buffer.from(await eml.arrayBuffer()), phish.raw);

    // A read token lists the quarantine and sees the reason, never the content.
    for (const p of [`/api/v1/quarantine/${id}/preview`, `/api/v1/quarantine/${id}/raw`]) {
      const r = await env.api(p, { token: READ_TOKEN });
      assert.equal(r.status, 403, p);
      assert.match(((await r.json()) as Json)['message'], /read-only.*admin role/);
    }
    assert.equal((await env.api(`/api/v1/quarantine/${id}`, { token: READ_TOKEN })).status, 200);
    assert.equal((await env.api('/api/v1/quarantine/no-such-id/preview')).status, 404);
    assert.equal((await env.api('/api/v1/quarantine/bad%20id/preview')).status, 400);

    assert.equal((await audited('quarantine.preview', id))[0]?.['who'], 'alice');
    assert.equal((await audited('quarantine.download', id))[0]?.['who'], 'alice');
    assert.equal((await audited('quarantine.preview', id)).length, 1, 'the refused read-token call is not an action');

    const doc = await json('/openapi.json');
    assert.ok(doc['paths']['/api/v1/quarantine/{id}/preview']?.['get'], 'preview documented');
    assert.match(doc['paths']['/api/v1/quarantine/{id}/raw']['get']['summary'], /admin role/);
  });

  describe('in headless Chromium', { skip: chromiumSkip }, () => {
    before(async () => {
      browser = await launchChromium();
      teardown.after(() => browser!.close());
    });

    test('preview shows the HTML part with its <script> as text; download; read token refused', async () => {
      await quarantine(phish);
      const id = phish.envelope.id;
      const { page, cspViolations, pageErrors } = await signedInPage(browser!, env.url);
      await page.goto(`${env.url}/console/quarantine`);
      await page.click(`#quarantine tr[data-id="${id}"] a.preview`);
      await page.waitForURL(new RegExp(`/console/quarantine/${id}$`));

      const html = page.locator('pre[data-type="text/html"]');
      assert.equal(await html.count(), 1);
      const shown = (await html.textContent()) ?? '';
      assert.ok(shown.includes(SCRIPT), `the script is shown as text: ${shown}`);
      assert.ok(shown.includes('<b id="bold">Pay now</b>'), 'the markup is shown, not applied');
      // Not rendered: no element from the message exists, no script ran, no image was requested.
      assert.equal(await page.locator('#bold').count(), 0);
      assert.equal(await page.locator('main script, main img').count(), 0);
      assert.equal(await page.evaluate('typeof window.pwned'), 'undefined');
      assert.notEqual(await page.title(), 'pwned');
      assert.match((await page.textContent('#preview-headers')) ?? '', /Rechnung für Sie/);
      const att = page.locator('#preview-attachments tr:has(td) td');
      assert.deepEqual(await att.allTextContents(), ['invoice.pdf', 'application/pdf', String(PDF.length), '2']);
      await page.screenshot({ path: path.join(ARTIFACTS, 'console-quarantine-preview.png'), fullPage: true });

      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), `${id}.eml`);
      const saved = await download.path();
      const { readFile } = await import('node:fs/promises');
      assert.deepEqual(await readFile(saved), phish.raw);
      await waitFor(
        async () => (await audited('quarantine.download', id)).some((a) => a['details']?.via === 'console'),
        {
          timeoutMs: 10_000,
          message: 'console download audited',
        },
      );
      assert.ok((await audited('quarantine.preview', id)).some((a) => a['details']?.via === 'console'));
      assert.deepEqual(cspViolations, []);
      assert.deepEqual(pageErrors, []);
      await page.close();

      // A read-only token can list the quarantine but not look inside.
      const ro = await signedInPage(browser!, env.url, READ_TOKEN);
      const r = await ro.page.goto(`${env.url}/console/quarantine/${id}`);
      assert.equal(r?.status(), 403);
      assert.match((await ro.page.textContent('#error')) ?? '', /read-only/);
      assert.equal((await ro.page.goto(`${env.url}/console/quarantine/${id}/download`))?.status(), 403);
      await ro.page.close();
    });

    test('releasing a virus asks first and names the detection; cancel keeps it, confirm releases', async () => {
      await quarantine(eicar);
      const id = eicar.envelope.id;
      const { page, cspViolations } = await signedInPage(browser!, env.url);
      await page.goto(`${env.url}/console/quarantine`);
      await page.locator(`#quarantine tr[data-id="${id}"] button:has-text("Release")`).first().click();
      await page.waitForSelector('#virus-warning');
      assert.equal(await page.textContent('#detection'), 'Eicar-Test-Signature');
      assert.match((await page.textContent('#virus-warning')) ?? '', /Eicar-Test-Signature/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'console-virus-release-confirm.png'), fullPage: true });
      // Asking released nothing.
      assert.equal((await env.api(`/api/v1/quarantine/${id}`)).status, 200);
      await page.click('#cancel');
      await page.waitForURL(/\/console\/quarantine$/);
      assert.equal(await page.locator(`#quarantine tr[data-id="${id}"]`).count(), 1, 'still held');

      await page.locator(`#quarantine tr[data-id="${id}"] button:has-text("Release")`).first().click();
      await page.click('#confirm-release');
      await page.waitForURL(/\/console\/quarantine$/);
      assert.equal(await page.locator(`#quarantine tr[data-id="${id}"]`).count(), 0, 'released');
      const recs = await env.readTopic(TOPICS.scanned, 1);
      assert.ok(
        recs.some((r) => r.key?.toString() === id),
        'released as is: to the stage after virus-scan',
      );
      const rel = ((await json('/api/v1/audit')).results as Json[]).find(
        (a) => a['action'] === 'quarantine.release' && a['target'] === id,
      );
      assert.equal(rel?.['who'], 'alice');
      assert.deepEqual(cspViolations, []);
      await page.close();
    });
  });
});
