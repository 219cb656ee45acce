// msg/s of the attachment-policy stage function, called directly on one core (no Kafka):
//   node --import tsx --conditions=mailgate-src services/attachment-policy/bench/policy.ts
import { randomBytes } from 'node:crypto';
import { zipSync } from 'fflate';
import { evaluateMessage, policyConfig } from '../src/index.js';

const cfg = policyConfig();
const HEAD = 'From: Alice <a@sender.test>\r\nTo: u@example.test\r\nSubject: bench\r\nMIME-Version: 1.0\r\n';
const b64 = (b: Uint8Array) =>
  (
    Buffer.from(b)
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');
const line = 'The quick brown fox jumps over the lazy dog, again and again, for the benchmark. ';

function plain(bytes: number): Buffer {
  let body = '';
  while (body.length < bytes) body += line + '\r\n';
  return Buffer.from(`${HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`);
}

function withAttachments(files: { name: string; type: string; data: Uint8Array }[]): Buffer {
  const parts = files.map(
    (f) =>
      `--b\r\nContent-Type: ${f.type}; name="${f.name}"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="${f.name}"\r\n\r\n${b64(f.data)}\r\n`,
  );
  return Buffer.from(
    `${HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n${parts.join('')}--b--\r\n`,
  );
}

/** A PDF-looking file of n bytes (magic + filler that does not compress to nothing). */
function pdf(n: number): Buffer {
  return Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(n - 9)]);
}

const zipEntries: Record<string, Uint8Array> = {};
for (let i = 0; i < 100; i++) zipEntries[`docs/file-${i}.txt`] = Buffer.from(`${line}${i}\n`.repeat(20));

const cases: [string, Buffer][] = [
  ['plain 10 KiB', plain(10 * 1024)],
  ['plain 100 KiB', plain(100 * 1024)],
  // The sizes the per-message CPU figure is quoted at: a text body plus one PDF attachment.
  ['10 KiB, 1 attachment (pdf)', withAttachments([{ name: 'r.pdf', type: 'application/pdf', data: pdf(7 * 1024) }])],
  ['100 KiB, 1 attachment (pdf)', withAttachments([{ name: 'r.pdf', type: 'application/pdf', data: pdf(73 * 1024) }])],
  [
    '1 MiB, 3 attachments (pdf)',
    withAttachments([0, 1, 2].map((i) => ({ name: `r${i}.pdf`, type: 'application/pdf', data: pdf(260 * 1024) }))),
  ],
  ['zip with 100 entries', withAttachments([{ name: 'docs.zip', type: 'application/zip', data: zipSync(zipEntries) }])],
];

for (const [name, raw] of cases) {
  const first = await evaluateMessage(cfg, raw);
  if (first.verdict.kind !== 'pass') throw new Error(`${name}: expected pass, got ${JSON.stringify(first.verdict)}`);
  // Warm up, then 5 rounds of ~0.5 s; the median round's CPU time (user+system) per message is quoted.
  for (let i = 0; i < 50; i++) await evaluateMessage(cfg, raw);
  const cpuPerMsg: number[] = [];
  let n = 0;
  let elapsed = 0;
  for (let round = 0; round < 5; round++) {
    let rn = 0;
    const start = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    let re = 0;
    while (re < 500) {
      for (let i = 0; i < 10; i++) await evaluateMessage(cfg, raw);
      rn += 10;
      re = Number(process.hrtime.bigint() - start) / 1e6;
    }
    const cpu = process.cpuUsage(cpu0);
    cpuPerMsg.push((cpu.user + cpu.system) / 1000 / rn);
    n += rn;
    elapsed += re;
  }
  cpuPerMsg.sort((a, b) => a - b);
  const rate = (n * 1000) / elapsed;
  console.log(
    `${name.padEnd(30)} ${(raw.length / 1024).toFixed(0).padStart(6)} KiB  ${rate.toFixed(0).padStart(7)} msg/s  ` +
      `${(elapsed / n).toFixed(3)} ms/msg  median CPU ${cpuPerMsg[2]!.toFixed(3)} ms/msg`,
  );
}
