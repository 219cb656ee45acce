// The Lua scripts of an attempt (claim + reads, the 250's record with its riders) against a real Redis: many
// recipients (the scripts slice their variadic calls), a script cache flushed under them (EVALSHA → EVAL).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRedis } from '@mailgate/runtime';
import { startRedis, type RedisHandle } from '@mailgate/testkit';
import type { Redis } from 'ioredis';
import { MessageClaims } from '../src/claim.js';
import { DeliveredMarkers } from '../src/markers.js';

let redis: RedisHandle;
let client: Redis;

before(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url, keyPrefix: 'scripts:' }, { name: 'scripts-test' });
});
after(async () => {
  await client?.quit();
  await redis?.stop();
});

const claimsOf = (r: Redis) => new MessageClaims(r, { ttlMs: 30_000, waitMs: 2000, pollMs: 20 });

test('2,500 recipients: the claim reads and the 250 record cover every one (variadic calls sliced)', async () => {
  const markers = new DeliveredMarkers(client, 3600_000, 60_000);
  const claims = claimsOf(client);
  const id = 'm-many';
  const rcpts = Array.from({ length: 2500 }, (_, i) => `R${i}@many.test`);
  await markers.markPending(id, rcpts, 'smarthost:x', 'attempt-1');
  await client.set('delivery:fails:smarthost:x', '3');

  await claims.withClaim(
    id,
    async (claim) => {
      assert.ok(claim.token);
      assert.equal(claim.strings.length, 5000);
      const st = markers.parseState(id, rcpts, claim.strings);
      assert.equal(st.pending.size, 2500);
      assert.equal(st.done.size, 0);
      assert.deepEqual(claim.ttls, [-2], 'no backoff key');
      assert.deepEqual(claim.hash, {}, 'no retry entry');
      // The record of the 250 for all but the last 10, which were refused: their pending marks go too.
      await markers.mark(
        id,
        rcpts.slice(0, 2490),
        { reply: '250 ok', at: 'now' },
        {
          clear: rcpts.slice(2490),
          del: ['delivery:fails:smarthost:x'],
          release: { key: claim.key, token: claim.token! },
        },
      );
      claim.released = true;
      assert.equal(await client.exists(claim.key), 0, 'released by the record');
    },
    {
      hash: 'delivery:retry:m-many',
      strings: markers.stateKeys(id, rcpts),
      ttls: ['delivery:backoff:smarthost:x'],
    },
  );
  const st = await markers.state(id, rcpts);
  assert.equal(st.done.size, 2490);
  assert.equal(st.pending.size, 0);
  assert.equal(await client.exists('delivery:fails:smarthost:x'), 0);
});

test('the record releases only its own claim; scripts survive a flushed script cache', async () => {
  const markers = new DeliveredMarkers(client, 3600_000, 60_000);
  const claims = claimsOf(client);
  const id = 'm-flush';
  await client.script('FLUSH');
  await claims.withClaim(id, async (claim) => {
    assert.ok(claim.token);
    // Our claim expired and another attempt took it: the record must leave that one alone.
    await client.set(claim.key, 'someone-else', 'PX', 5000);
    await client.script('FLUSH');
    await markers.mark(
      id,
      ['a@flush.test'],
      { reply: '250 ok', at: 'now' },
      { release: { key: claim.key, token: claim.token! } },
    );
  });
  assert.equal(await client.get(`delivery:claim:${id}`), 'someone-else');
  assert.ok((await markers.state(id, ['a@flush.test'])).done.has('a@flush.test'));
});

test('a held claim: the reads wait for it; after waitMs they are made without it', async () => {
  const markers = new DeliveredMarkers(client, 3600_000, 60_000);
  const id = 'm-held';
  await client.set(`delivery:claim:${id}`, 'stuck', 'PX', 60_000);
  await markers.mark(id, ['b@held.test'], { reply: '250 earlier', at: 'then' });
  const impatient = new MessageClaims(client, { ttlMs: 1000, waitMs: 100, pollMs: 20 });
  await impatient.withClaim(
    id,
    async (claim) => {
      assert.equal(claim.token, null, 'proceeding without the claim');
      assert.equal(
        markers.parseState(id, ['b@held.test'], claim.strings).done.get('b@held.test')?.reply,
        '250 earlier',
      );
    },
    { strings: markers.stateKeys(id, ['b@held.test']) },
  );
  assert.equal(await client.get(`delivery:claim:${id}`), 'stuck', 'the holder keeps its claim');
});
