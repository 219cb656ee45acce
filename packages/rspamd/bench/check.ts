// npm run bench:rspamd — /checkv2 through RspamdClient against a real rspamd (the test one: startRspamd, no Redis, so
// no Bayes): checks/s and the CPU per check of this process (the client) and of rspamd's workers, with 20 requests
// in flight. Prints figures, asserts nothing.
//
// The point is the client's own cost per check: rspamd closes every connection after its reply, so each check is
// one connect and close whatever the client does (docs/spam-check.md, "Why no keep-alive").
// CHECKS=600 (per round), ROUNDS=3, CONCURRENCY=20 (a list; one at a time is slow: the test rspamd's DNS is an
// unreachable resolver with a 0.1 s timeout, and some of its rules wait on it), BYTES=10240.
import { readFileSync } from 'node:fs';
import { startRspamd, textMessage } from '@mailgate/testkit';
import { RspamdClient } from '../src/index.js';

const CHECKS = Number(process.env['CHECKS'] ?? 600);
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const CONCURRENCY = (process.env['CONCURRENCY'] ?? '20').split(',').map(Number);
const BYTES = Number(process.env['BYTES'] ?? 10240);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** CPU seconds (user + system) of a process and its direct children (rspamd's workers), from /proc. */
function treeCpu(pid: number | undefined): number {
  if (!pid) return NaN;
  const one = (p: number) => {
    try {
      const rest = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(rest[11]) + Number(rest[12])) / 100;
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    /* none */
  }
  return one(pid) + children.reduce((a, c) => a + one(c), 0);
}

const body = 'The figures for the third quarter are in the shared folder; see you on Thursday.\r\n';
const msgs = Array.from({ length: 50 }, (_, i) =>
  Buffer.from(
    textMessage({
      from: 'Alice <alice@partner.test>',
      to: 'bob@example.test',
      subject: `report ${i}`,
      messageId: `${i}.bench@partner.test`,
      body: body.repeat(Math.max(1, Math.floor(BYTES / body.length))),
    }),
  ),
);
const env = { from: 'alice@partner.test', rcpt: ['bob@example.test'], ip: '192.0.2.10', helo: 'mx.partner.test' };

const rspamd = await startRspamd();
try {
  console.log(`rspamd ${rspamd.host}:${rspamd.port}, ${CHECKS} checks of ~${BYTES} B per run, median of ${ROUNDS}`);
  console.log('in flight  checks/s  client CPU ms/check  rspamd CPU ms/check');
  for (const conc of CONCURRENCY) {
    const runs: { rate: number; client: number; rspamd: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const client = new RspamdClient({ worker: { host: rspamd.host, port: rspamd.port }, timeoutMs: 30_000 });
      let next = 0;
      const cpu0 = process.cpuUsage();
      const r0 = treeCpu(rspamd.pid);
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (next < CHECKS) await client.check(msgs[next++ % msgs.length]!, env);
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      runs.push({
        rate: CHECKS / secs,
        client: (cpu.user + cpu.system) / 1000 / CHECKS,
        rspamd: ((treeCpu(rspamd.pid) - r0) * 1000) / CHECKS,
      });
      client.close();
    }
    console.log(
      `${String(conc).padStart(9)}  ${median(runs.map((x) => x.rate))
        .toFixed(0)
        .padStart(8)}  ${median(runs.map((x) => x.client))
        .toFixed(3)
        .padStart(19)}  ${median(runs.map((x) => x.rspamd))
        .toFixed(3)
        .padStart(19)}`,
    );
  }
} finally {
  await rspamd.stop();
}
