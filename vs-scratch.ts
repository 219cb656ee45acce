import { startClamd, makeTempDir, removeTempDir } from '@mailgate/testkit';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClamdPool, clamdRequest, instreamFrames } from './services/virus-scan/src/index.ts';
const c = await startClamd();
const dir = makeTempDir('x');
const msgs = Array.from({ length: 400 }, (_, i) => Buffer.from(`Subject: ${i}\r\n\r\n` + 'x'.repeat(10000) + i));
const files = msgs.map((m, i) => { const f = join(dir, `${i}.eml`); writeFileSync(f, m); return f; });
const ep = { socket: c.socketPath };
const r: Record<string, number[]> = { clamdscan: [], raw: [], pool: [] };
const p = new ClamdPool({ endpoints: [ep], connectTimeoutMs: 1000, readTimeoutMs: 5000, chunkBytes: 262144, healthIntervalMs: 0 });
try {
  for (let round = 0; round < 5; round++) {
    await c.restart(); let t0 = performance.now();
    spawnSync('/usr/bin/clamdscan', ['--stream', '--no-summary', '--quiet', `--config-file=${join(c.dir, 'clamd.conf')}`, ...files]);
    r.clamdscan.push((performance.now() - t0) / 400);
    await c.restart(); t0 = performance.now();
    for (const m of msgs) await clamdRequest(ep, instreamFrames(m, 262144), { connectTimeoutMs: 1000, readTimeoutMs: 5000 });
    r.raw.push((performance.now() - t0) / 400);
    await c.restart(); t0 = performance.now();
    for (const m of msgs) await p.scan(m);
    r.pool.push((performance.now() - t0) / 400);
  }
  for (const [k, v] of Object.entries(r)) console.log(k.padEnd(10), v.map((x) => x.toFixed(2)).join(' '), 'ms/msg');
} finally { await c.stop(); await removeTempDir(dir); }
