// npm run bench:scan — messages/s through the virus-scan stage with one clamd, against clamd's own client
// (`clamdscan --stream`) on the same files as the ceiling, and the CPU per message of the stage's process and of
// clamd. Prints figures, asserts nothing.
//
// SESSIONS=0,4,8,16 (default) compares `clamd.sessionsPerEndpoint` values over TCP (0 = one connection per scan);
// CONCURRENCY=1,4,20 (default) the scans in flight at once (20: what a busy stage has in flight).
//
// clamd runs with the testkit's generated database (one EICAR signature), so a scan costs clamd little and the
// client's own overhead weighs as much as it ever will: the ratio here is a worst case. clamd is restarted
// before every run so its clean-file cache does not favour whichever run comes second.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newEnvelope } from '@mailgate/contracts';
import { createLogger } from '@mailgate/runtime';
import { makeTempDir, removeTempDir, startClamd } from '@mailgate/testkit';
import { trace } from '@opentelemetry/api';
import { ClamdPool, createVirusScanStage, virusScanSchema, type ClamdEndpoint } from '../src/index.js';

const log = createLogger('bench', 'silent');
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const list = (name: string, def: string) => (process.env[name] ?? def).split(',').map(Number);
const SESSIONS = list('SESSIONS', '0,4,8,16');
const CONCURRENCY = list('CONCURRENCY', '1,4,20');
/** Message sizes in bytes (default 10 KiB and 1 MiB). */
const SIZES = list('SIZES', `${10 * 1024},${1024 * 1024}`);
/** clamd's own client, the ceiling; Debian ships it in the clamdscan package (the figures go without it). */
const CLAMDSCAN = existsSync('/usr/bin/clamdscan');

/** CPU seconds (user + system) of a process so far, from /proc. */
function procCpu(pid: number | undefined): number {
  if (!pid) return NaN;
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

/** Deterministic pseudo-random bytes (xorshift): every message distinct, every run the same. */
function noise(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A multipart message of about `size` bytes: a text part and a base64 attachment. */
function message(size: number, seed: number): Buffer {
  const attachment = noise(Math.floor((size - 600) * 0.74), seed)
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      'From: Alice <alice@sender.test>',
      'To: bob@example.test',
      `Subject: report ${seed}`,
      `Message-ID: <${seed}@sender.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'The figures are attached.',
      '--b',
      'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="data.bin"',
      '',
      attachment,
      '--b--',
      '',
    ].join('\r\n'),
  );
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.slice(0, 500)}`))));
  });
}

/** clamdscan on `files`, split over `parallel` processes; msg/s. */
async function clamdscanRate(
  conf: string,
  files: string[],
  parallel: number,
  mode: '--stream' | '--fdpass',
): Promise<number> {
  if (!CLAMDSCAN) return NaN;
  const lists: string[][] = Array.from({ length: parallel }, () => []);
  files.forEach((f, i) => lists[i % parallel]!.push(f));
  const t0 = performance.now();
  await Promise.all(
    lists.map((l) => run('/usr/bin/clamdscan', [mode, '--no-summary', '--quiet', `--config-file=${conf}`, ...l])),
  );
  return files.length / ((performance.now() - t0) / 1000);
}

interface StageRun {
  rate: number;
  /** CPU ms per message of this process (the stage and its clamd client). */
  clientMs: number;
  /** CPU ms per message of clamd. */
  clamdMs: number;
}

/** The stage function (header, envelope and all) on `msgs`, `concurrency` at a time. */
async function stageRate(
  endpoint: ClamdEndpoint,
  msgs: Buffer[],
  concurrency: number,
  sessionsPerEndpoint?: number,
): Promise<StageRun> {
  const config = virusScanSchema.parse({ clamd: { endpoints: [endpoint], sessionsPerEndpoint } });
  const pool = new ClamdPool({ ...config.clamd, healthIntervalMs: 0 });
  const { fn } = createVirusScanStage({ config, scanner: pool, gateway: { name: 'mailgate', hostname: 'bench' } });
  const span = trace.getTracer('bench').startSpan('bench');
  const signal = new AbortController().signal;
  let next = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const clamd0 = procCpu(clamd.pid);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < msgs.length) {
        const raw = msgs[next++]!;
        const msg = { envelope: newEnvelope({ mailFrom: 'a@s.test', rcptTo: ['b@e.test'], size: raw.length }), raw };
        const out = await fn(msg, {
          stage: 'virus-scan',
          attempt: 1,
          firstAttemptAt: Date.now(),
          log,
          span,
          signal,
          host: 'bench',
        });
        if (out.verdict.kind !== 'pass') throw new Error(`unexpected verdict ${JSON.stringify(out.verdict)}`);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const clamdMs = ((procCpu(clamd.pid) - clamd0) * 1000) / msgs.length;
  pool.close();
  return { rate: msgs.length / elapsed, clientMs: (cpu.user + cpu.system) / 1000 / msgs.length, clamdMs };
}

// SIGNATURES=n adds n random body signatures, so clamd's own scan cost moves toward a real database's.
const extra = Number(process.env['SIGNATURES'] ?? 0);
const clamd = await startClamd({
  streamMaxLength: '25M',
  timeoutMs: 120_000,
  extraSignatures: Array.from({ length: extra }, (_, i) => ({
    name: `Bench-${i}`,
    hex: randomBytes(12).toString('hex'),
  })),
});
const dir = makeTempDir('scan-bench');
try {
  const conf = join(clamd.dir, 'clamd.conf');
  const unix: ClamdEndpoint = { socket: clamd.socketPath };
  const tcp: ClamdEndpoint = { host: clamd.host, port: clamd.port };
  console.log(
    `clamd ${clamd.host}:${clamd.port} + ${clamd.socketPath} (MaxThreads 4), generated database: EICAR + ${extra} random signatures`,
  );
  console.log(`median of ${ROUNDS} alternating rounds`);
  console.log(
    'size      conc  via        stage msg/s  clamdscan --stream msg/s  ratio  stage CPU ms/msg  clamd CPU ms/msg',
  );
  for (const [label, size, count] of (
    [
      ['10 KiB', 10 * 1024, 400],
      ['1 MiB', 1024 * 1024, 40],
    ] as const
  ).filter(([, size]) => SIZES.includes(size))) {
    const msgs = Array.from({ length: count }, (_, i) => message(size, i + 1));
    const files = msgs.map((m, i) => {
      const f = join(dir, `${size}-${i}.eml`);
      writeFileSync(f, m);
      return f;
    });
    for (const conc of CONCURRENCY) {
      // Alternate the contenders ROUNDS times and keep each one's median: the machine is shared and noisy.
      // "unix": the default sessions over the Unix socket; "tcp N": N sessions per endpoint over TCP (0: one
      // connection per scan).
      const vias = ['unix', ...SESSIONS.map((n) => `tcp ${n}`)];
      const runs = new Map<string, StageRun[]>(vias.map((v) => [v, []]));
      const ceilings: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        await clamd.restart();
        ceilings.push(await clamdscanRate(conf, files, conc, '--stream'));
        for (const via of vias) {
          await clamd.restart();
          const sessions = via === 'unix' ? undefined : Number(via.split(' ')[1]);
          runs.get(via)!.push(await stageRate(via === 'unix' ? unix : tcp, msgs, conc, sessions));
        }
      }
      const ceiling = median(ceilings);
      for (const via of vias) {
        const rs = runs.get(via)!;
        const rate = median(rs.map((x) => x.rate));
        console.log(
          `${label.padEnd(9)} ${String(conc).padEnd(5)} ${via.padEnd(10)} ${rate.toFixed(1).padStart(11)}  ${ceiling.toFixed(1).padStart(24)}  ${(rate / ceiling).toFixed(2).padStart(5)}  ${median(
            rs.map((x) => x.clientMs),
          )
            .toFixed(3)
            .padStart(13)}  ${median(rs.map((x) => x.clamdMs))
            .toFixed(3)
            .padStart(13)}`,
        );
      }
    }
    await clamd.restart();
    console.log(
      `${label.padEnd(9)} 1     (clamdscan --fdpass, no copy: ${(await clamdscanRate(conf, files, 1, '--fdpass')).toFixed(1)} msg/s)`,
    );
  }
} finally {
  await removeTempDir(dir);
  await clamd.stop();
}
