import { test } from 'node:test';
import { startRedis } from '../src/index.js';
test('hang', async () => {
  const r = await startRedis();
  console.log('INFO', JSON.stringify({ pid: r.pid, dir: r.dir, me: process.pid }));
  await new Promise(() => setInterval(() => {}, 1000));
});
