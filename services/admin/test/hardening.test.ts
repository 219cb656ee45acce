// The admin HTTP surface's hardening over real HTTP (kafka-lite + Redis): security headers on every response,
// malformed cookies, the failed-auth throttle shared through Redis, the auth scheme's case, trusted proxies.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ADMIN_TOKEN, READ_TOKEN, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';
import { CONSOLE_STYLE } from '../src/console.js';
import { STYLE_HASH } from '../src/security.js';
import { createHash } from 'node:crypto';
import http from 'node:http';

const MAX_FAILURES = 3;
const WINDOW_S = 120;

describe('admin hardening', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  before(async () => {
    env = await startAdminEnv(
      teardown,
      // 127.0.0.2 plays the ingress controller; clients behind it are told apart by X-Forwarded-For.
      { authFailures: { max: MAX_FAILURES, windowSeconds: WINDOW_S }, trustedProxies: ['127.0.0.2/32'] },
    );
  });

  const assertHardened = (r: Response, what: string) => {
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, `${what}: CSP`);
    assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`);
    assert.ok(!csp.includes('unsafe-inline'), `${what}: no unsafe-inline`);
    assert.equal(r.headers.get('cache-control'), 'no-store', `${what}: cache-control`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', `${what}: referrer-policy`);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', `${what}: x-frame-options`);
  };

  test('every response carries CSP, Cache-Control: no-store, nosniff, Referrer-Policy', async () => {
    const cases: [string, Parameters<AdminEnv['api']>[1]][] = [
      ['/api/v1/messages', {}],
      ['/api/v1/messages', { token: null }], // 401
      ['/api/v1/quarantine/NOPE0000000000000000000000', {}], // 404
      ['/no/such/route', {}], // fastify 404
      ['/console/login', { token: null }],
      ['/console/messages', { redirect: 'manual', token: null }], // 302 to login
      ['/console/messages', { headers: { cookie: `mailgate_token=${ADMIN_TOKEN}` }, token: null }],
      ['/openapi.json', {}],
      ['/healthz', { token: null }],
      ['/metrics', { token: null }], // hijacked by the Prometheus exporter
    ];
    for (const [path, init] of cases) {
      const r = await env.api(path, init);
      assertHardened(r, `${path} (${r.status})`);
      await r.arrayBuffer();
    }
  });

  test("the console's inline stylesheet is allowed by its hash, and the page has no other inline style", async () => {
    const r = await env.api('/console/messages', { headers: { cookie: `mailgate_token=${ADMIN_TOKEN}` }, token: null });
    assert.equal(r.status, 200);
    const html = await r.text();
    const expected = `sha256-${createHash('sha256').update(CONSOLE_STYLE).digest('base64')}`;
    assert.equal(STYLE_HASH, expected);
    assert.ok(r.headers.get('content-security-policy')!.includes(`style-src '${expected}'`));
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]);
    assert.deepEqual(styles, [CONSOLE_STYLE]);
    assert.ok(!/\sstyle=/.test(html), 'no style attributes (a hash does not cover them)');
    assert.ok(!/<script/i.test(html));
  });

  test('a malformed cookie header is 400 with a JSON error, not 500; foreign cookies are ignored', async () => {
    for (const cookie of ['mailgate_token=%E0%A4%A', 'a=b; mailgate_token=%%%']) {
      const r = await env.api('/console/messages', { headers: { cookie }, token: null, redirect: 'manual' });
      assert.equal(r.status, 400, cookie);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      const body = (await r.json()) as Record<string, string>;
      assert.equal(body['error'], 'bad-request');
      assert.match(body['message']!, /malformed Cookie/);
      assertHardened(r, 'malformed cookie 400');
    }
    // Someone else's cookie for this host with bad encoding does not break our console.
    const r = await env.api('/console/messages', {
      headers: { cookie: `other_app=%ZZ; mailgate_token=${encodeURIComponent(ADMIN_TOKEN)}` },
      token: null,
    });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });

  test('the auth scheme is case-insensitive (RFC 9110 §11.1)', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer', 'bEaReR']) {
      const r = await env.api('/api/v1/messages', {
        token: null,
        headers: { authorization: `${scheme} ${READ_TOKEN}` },
      });
      assert.equal(r.status, 200, scheme);
      await r.arrayBuffer();
    }
  });

  test('failed auth is throttled per client IP (429 + Retry-After), across the API and the console login', async () => {
    // Behind the trusted proxy: this client is 198.51.100.7 (the left-most hop is client-written and ignored).
    const as = (ip: string) => ({ 'x-forwarded-for': `203.0.113.99, ${ip}` });
    const viaProxy = (
      path: string,
      ip: string,
      init: { method?: string; headers?: Record<string, string>; body?: string } = {},
    ) => fromProxy(env.url + path, { ...init, headers: { ...as(ip), ...init.headers } });
    const bad = (ip: string) =>
      viaProxy('/api/v1/messages', ip, { headers: { authorization: 'Bearer wrong-token-wrong-token' } });
    for (let i = 0; i < MAX_FAILURES - 1; i++) assert.equal((await bad('198.51.100.7')).status, 401);
    // The last allowed failure comes through the console login form.
    const login = await viaProxy('/console/login', '198.51.100.7', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=wrong-token-wrong-token',
    });
    assert.equal(login.status, 401);
    // Now blocked: wrong and even right tokens, on the API and on the login form.
    const blocked = await bad('198.51.100.7');
    assert.equal(blocked.status, 429);
    const retry = Number(blocked.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= WINDOW_S, `Retry-After ${retry}`);
    assert.equal(((await blocked.json()) as Record<string, string>)['error'], 'too-many-requests');
    assertHardened(blocked, '429');
    const right = await viaProxy('/api/v1/messages', '198.51.100.7', {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(right.status, 429);
    const loginBlocked = await viaProxy('/console/login', '198.51.100.7', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${ADMIN_TOKEN}`,
    });
    assert.equal(loginBlocked.status, 429);
    assert.ok(Number(loginBlocked.headers.get('retry-after')) >= 1);
    // Another client behind the same proxy is not affected, nor is a direct client (its socket address counts,
    // a forged X-Forwarded-For from an untrusted peer is ignored).
    const other = await viaProxy('/api/v1/messages', '198.51.100.8', {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(other.status, 200);
    const direct = await env.api('/api/v1/messages', { headers: as('198.51.100.7') });
    assert.equal(direct.status, 200);
    // Requests without a credential are not throttled (the login page stays reachable).
    assert.equal((await viaProxy('/console/login', '198.51.100.7')).status, 200);
  });

  test('the failed-auth count is shared by replicas through Redis', async () => {
    // A second admin replica (own broker, same Redis keys): failures on one block the client on the other.
    const replica = await startAdminEnv(
      teardown,
      { authFailures: { max: MAX_FAILURES, windowSeconds: WINDOW_S } },
      { keyPrefix: env.keyPrefix },
    );
    const wrong = { token: 'another-wrong-token-0123456789' };
    for (let i = 0; i < MAX_FAILURES; i++) {
      const target = i % 2 === 0 ? env : replica;
      assert.equal((await target.api('/api/v1/messages', wrong)).status, 401);
    }
    for (const target of [env, replica]) {
      const r = await target.api('/api/v1/messages', {});
      assert.equal(r.status, 429, 'blocked on both replicas, even with the right token');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      await r.arrayBuffer();
    }
  });
});

/** A request from 127.0.0.2 (the "ingress controller"); fetch cannot choose its local address. */
function fromProxy(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<Response>((resolve, reject) => {
    const req = http.request(
      url,
      { method: init.method ?? 'GET', headers: init.headers ?? {}, localAddress: '127.0.0.2' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, x);
          }
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode!, headers }));
        });
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
