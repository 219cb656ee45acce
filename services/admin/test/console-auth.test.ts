// The console's message view shows the sender-authentication results ingress recorded on the `received` event:
// over real HTTP (signed in with a token, as a browser would), events through kafka-lite into the tracking store.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { TrackingEvent } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import { eventsFor, quarantinedMessage, READ_TOKEN, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

describe('console: sender authentication in the message view', () => {
  let env: AdminEnv;
  let cookie: string;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(teardown);
    const login = await fetch(`${env.url}/console/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(READ_TOKEN)}`,
      redirect: 'manual',
    });
    assert.equal(login.status, 302);
    cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  });

  /** The message's events with `auth` (or none) on its `received` event; resolves with the rendered view. */
  async function view(auth: Record<string, unknown> | undefined): Promise<string> {
    const m = quarantinedMessage({ from: 'ceo@customer.test', to: 'cfo@example.test', ip: '203.0.113.66' });
    const evs: TrackingEvent[] = eventsFor(m, 'delivered').map((e) =>
      e.type === 'received' && auth ? { ...e, details: { ...e.details, auth } } : e,
    );
    await env.events(evs);
    const id = m.msg.envelope.id;
    return waitFor(
      async () => {
        const r = await fetch(`${env.url}/console/messages/${id}`, { headers: { cookie } });
        if (r.status !== 200) return null;
        const text = await r.text();
        return text.includes('s-delivered">delivered') ? text : null;
      },
      { timeoutMs: 20_000, message: `console view of ${id}` },
    );
  }

  const cellOf = (html: string, method: string) =>
    new RegExp(`<td data-method="${method}"[^>]*>(.*?)</td>`).exec(html)?.[1] ?? '';

  test('result words, domains, action and reason; failures coloured', async () => {
    const html = await view({
      spf: 'softfail',
      dkim: 'fail,pass',
      dkimDomains: ['customer.test', 'esp.test'],
      dmarc: 'fail',
      dmarcDomain: 'customer.test',
      arc: 'none',
      action: 'tag',
      reason: 'DMARC fail for customer.test under p=quarantine (tag)',
    });
    assert.match(html, /<section id="sender-auth"><h3>Sender authentication<\/h3>/);
    assert.match(cellOf(html, 'spf'), /^<span class="auth-softfail">softfail<\/span>$/);
    assert.equal(
      cellOf(html, 'dkim'),
      '<span class="auth-fail">fail</span>, <span class="auth-pass">pass</span> <span class="muted">(customer.test, esp.test)</span>',
    );
    assert.equal(
      cellOf(html, 'dmarc'),
      '<span class="auth-fail">fail</span> <span class="muted">(customer.test)</span>',
    );
    assert.equal(cellOf(html, 'arc'), '<span class="auth-none">none</span>');
    assert.match(html, /<td data-method="action" class="auth-action-tag"><b>tag<\/b><\/td>/);
    assert.match(html, /<span id="auth-reason">DMARC fail for customer\.test under p=quarantine \(tag\)<\/span>/);
    // The panel comes before the timeline, which still carries the raw details.
    assert.ok(html.indexOf('id="sender-auth"') < html.indexOf('id="timeline"'));
  });

  test('dry run shows the would-be decision; fail-open checks are named; unchecked methods are a dash', async () => {
    const html = await view({
      spf: 'pass',
      dmarc: 'fail',
      dmarcDomain: 'customer.test',
      action: 'accept',
      reason: 'dry run',
      dryRun: true,
      wouldBe: 'reject',
      wouldBeReason: 'DMARC fail for customer.test under p=reject',
      failedOpen: ['dkim'],
    });
    assert.match(html, /<td data-method="action" class="auth-action-accept"><b>accept<\/b>/);
    assert.match(
      html,
      /<span id="auth-dry-run">dry run: would have been <b>reject<\/b> \(DMARC fail for customer\.test under p=reject\)<\/span>/,
    );
    assert.match(html, /<span id="auth-failed-open">failed open: dkim<\/span>/);
    assert.equal(cellOf(html, 'dkim'), '<span class="muted">—</span>');
    assert.equal(cellOf(html, 'arc'), '<span class="muted">—</span>');
  });

  test('attacker-controlled values are escaped; a message ingress did not check says so', async () => {
    const html = await view({
      spf: '<img src=x onerror=alert(1)>',
      dmarc: 'fail',
      dmarcDomain: '"><script>alert(1)</script>',
      action: 'quarantine',
      reason: 'From <script>',
    });
    assert.doesNotMatch(html, /<script>alert|<img src=x/);
    assert.match(cellOf(html, 'spf'), /^<span>&#60;img src=x onerror=alert\(1\)&#62;<\/span>$/);
    assert.match(html, /class="auth-action-quarantine"/);

    const plain = await view(undefined);
    assert.match(plain, /<p class="muted" id="auth-not-checked">Not checked/);
    assert.doesNotMatch(plain, /id="auth-results"/);
  });
});
