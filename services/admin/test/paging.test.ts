// Search paging end to end: the API caps a page (tracking.maxResults = 2 here) and hands out a cursor; the CLI
// follows the pages instead of stopping silently at the cap. Also: search by Message-ID header and subject words.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { runTrack } from '../../../packages/cli/src/track.js';
import { ingestEvents, ingressEvent, runCli, startAdminEnv, suiteTeardown, type AdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('search paging, Message-ID and subject', () => {
  let env: AdminEnv;
  const teardown = suiteTeardown();
  const ids: string[] = [];
  before(async () => {
    env = await startAdminEnv(teardown, { tracking: { maxResults: 2 } });
    const t0 = Date.now() - 60_000;
    const client = { mailFrom: 'pages@paging.test', rcptTo: ['desk@example.test'], clientIp: '192.0.2.90' };
    const evs: TrackingEvent[] = [];
    for (let i = 0; i < 5; i++) {
      const id = newMessageId();
      ids.push(id);
      evs.push(
        ingressEvent('received', id, { t0, seconds: i }, client, {
          subject: `Order ${i} confirmed`,
          messageIdHeader: `<order-${i}@shop.test>`,
        }),
      );
    }
    await ingestEvents(env, evs);
  });

  const json = async (path: string): Promise<Json> => {
    const r = await env.api(path);
    assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
    return (await r.json()) as Json;
  };

  test('the API pages with nextCursor; a bad cursor is 400', async () => {
    const first = await json('/api/v1/messages?from=pages@paging.test&limit=50');
    assert.equal(first['results'].length, 2, 'capped by tracking.maxResults');
    assert.ok(first['nextCursor']);
    const seen = [...first['results'].map((m: Json) => m['id'])];
    let cursor = first['nextCursor'] as string | undefined;
    while (cursor) {
      const p = await json(`/api/v1/messages?from=pages@paging.test&cursor=${encodeURIComponent(cursor)}`);
      seen.push(...p['results'].map((m: Json) => m['id']));
      cursor = p['nextCursor'];
    }
    assert.deepEqual(seen, [...ids].reverse());
    assert.equal((await env.api('/api/v1/messages?cursor=nope')).status, 400);
  });

  test('search by Message-ID header and by subject words', async () => {
    const byMid = await json('/api/v1/messages?messageId=' + encodeURIComponent('<order-2@shop.test>'));
    assert.deepEqual(
      byMid['results'].map((m: Json) => [m['id'], m['subject'], m['messageIdHeader']]),
      [[ids[2], 'Order 2 confirmed', '<order-2@shop.test>']],
    );
    const bySubject = await json('/api/v1/messages?subject=' + encodeURIComponent('confirmed ORDER 3'));
    assert.deepEqual(
      bySubject['results'].map((m: Json) => m['id']),
      [ids[3]],
    );
  });

  test('the CLI follows the pages (five results over three requests); --limit stops early and says so', async () => {
    const run = (argv: string[]) => runCli(runTrack, env, argv);
    const all = await run(['track', '--from', 'pages@paging.test', '--json']);
    assert.equal(all.code, 0, all.err);
    assert.deepEqual(
      (JSON.parse(all.out) as Json)['results'].map((m: Json) => m['id']),
      [...ids].reverse(),
    );
    assert.equal(all.err, '');
    const some = await run(['track', '--from', 'pages@paging.test', '--limit', '3']);
    assert.equal(some.code, 0);
    assert.equal(some.out.trim().split('\n').length, 2 + 3, 'header, rule and three rows');
    assert.match(some.err, /more than 3 messages match/);
    const mid = await run(['track', '--message-id', 'order-4@shop.test']);
    assert.match(mid.out, new RegExp(ids[4]!));
  });
});
