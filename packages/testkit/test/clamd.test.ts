import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  clamdCommand,
  clamdScan,
  EICAR,
  EICAR_FOUND_NAME,
  makeTempDir,
  removeTempDir,
  startClamd,
  type ClamdHandle,
} from '../src/index.js';

let clamd: ClamdHandle;
before(async () => {
  clamd = await startClamd({
    streamMaxLength: '1M',
    extraSignatures: [{ name: 'Mailgate-Test-Marker', hex: Buffer.from('MAILGATE-TEST-MARKER-7d1e').toString('hex') }],
  });
  console.log(`clamd started in ${clamd.startupMs} ms`);
});
after(() => clamd.stop());

test('EICAR is the 68-byte test string', () => {
  assert.equal(EICAR.length, 68);
  assert.ok(EICAR.startsWith('X5O!P%@AP'));
});

test('clamd PING / VERSION over TCP', async () => {
  assert.equal(await clamdCommand(clamd.host, clamd.port, 'PING'), 'PONG');
  assert.match(await clamdCommand(clamd.host, clamd.port, 'VERSION'), /^ClamAV \d+\.\d+/);
});

test('INSTREAM: EICAR found, clean OK, extra signature, unix socket', async () => {
  assert.equal(await clamdScan(clamd, EICAR), `stream: ${EICAR_FOUND_NAME} FOUND`);
  assert.equal(await clamdScan(clamd, 'hello, clean world\n'), 'stream: OK');
  assert.equal(
    await clamdScan(clamd, 'xx MAILGATE-TEST-MARKER-7d1e yy'),
    'stream: Mailgate-Test-Marker.UNOFFICIAL FOUND',
  );
  assert.equal(await clamdScan({ socketPath: clamd.socketPath }, EICAR), `stream: ${EICAR_FOUND_NAME} FOUND`);
});

test('EICAR inside a zip and inside a base64 MIME attachment', async () => {
  const dir = makeTempDir('zip');
  try {
    writeFileSync(join(dir, 'eicar.com'), EICAR);
    execFileSync('zip', ['-q', 'e.zip', 'eicar.com'], { cwd: dir });
    const zip = readFileSync(join(dir, 'e.zip'));
    assert.equal(await clamdScan(clamd, zip), `stream: ${EICAR_FOUND_NAME} FOUND`);
  } finally {
    await removeTempDir(dir);
  }
  const b64 = Buffer.from(EICAR).toString('base64');
  const mime = [
    'From: a@example.test',
    'To: b@example.test',
    'Subject: attachment',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'hi',
    '--b1',
    'Content-Type: application/octet-stream; name="e.com"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="e.com"',
    '',
    b64,
    '--b1--',
    '',
  ].join('\r\n');
  assert.equal(await clamdScan(clamd, mime), `stream: ${EICAR_FOUND_NAME} FOUND`);
});

test('StreamMaxLength is enforced', async () => {
  // clamd answers "size limit exceeded" and closes; under load the close can reset the connection before the
  // reply is read. Either way the stream was refused — never "OK".
  const reply = await clamdScan(clamd, Buffer.alloc(2 * 1024 * 1024, 0x61)).catch((e: NodeJS.ErrnoException) => {
    assert.match(String(e.code), /EPIPE|ECONNRESET/);
    return 'size limit exceeded (connection reset by clamd)';
  });
  assert.match(reply, /size limit exceeded/i);
});

test('restart() keeps port and database; stop() removes the temp dir', async () => {
  const c = await startClamd();
  const { dir, port } = c;
  await c.kill();
  await c.restart();
  assert.equal(c.port, port);
  assert.equal(await clamdScan(c, EICAR), `stream: ${EICAR_FOUND_NAME} FOUND`);
  await c.stop();
  await c.stop();
  assert.equal(existsSync(dir), false);
});
