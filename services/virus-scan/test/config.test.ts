import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, ConfigErrors } from '@mailgate/runtime';
import {
  instreamFrames,
  parseClamdSize,
  parseInstreamReply,
  parseVersion,
  prependHeader,
  signatureFamily,
  stripHeader,
  virusScanSchema,
} from '../src/index.js';

test('config: defaults fail closed', () => {
  const c = virusScanSchema.parse({});
  assert.equal(c.http.port, 9103);
  assert.deepEqual(c.clamd.endpoints, [{ host: '127.0.0.1', port: 3310 }]);
  assert.equal(c.clamd.streamMaxLength, 64 * 1024 * 1024);
  assert.equal(c.failOpen, false);
  assert.equal(c.scanAttachmentsSeparately, true);
  assert.deepEqual(c.actions, { infected: 'quarantine', tooLarge: 'quarantine', unscannable: 'quarantine' });
  assert.equal(c.header.name, 'X-Mailgate-Virus-Scanned');
  assert.equal(c.bus, undefined);
});

test('config: maxHoldMs is handed to the runner; errors name the key', () => {
  assert.equal(virusScanSchema.parse({ maxHoldMs: 5000 }).bus?.maxHoldMs, 5000);
  const err = (doc: unknown) => {
    try {
      loadConfig({ document: { virusScan: doc }, env: {}, sections: { virusScan: virusScanSchema } });
    } catch (e) {
      assert.ok(e instanceof ConfigErrors);
      return e.errors.map((x) => x.message).join('\n');
    }
    assert.fail('expected a config error');
  };
  assert.match(
    err({ actions: { tooLarge: 'pass' } }),
    /at virusScan\.actions\.tooLarge \(defaults\): 'pass' .*failOpen/,
  );
  assert.match(err({ clamd: { streamMaxLength: '12X' } }), /at virusScan\.clamd\.streamMaxLength .*not a size/);
  assert.match(err({ clamd: { endpoints: [{ host: 'x' }] } }), /virusScan\.clamd\.endpoints\[0\]/);
  assert.match(err({ scanAttachments: true }), /at virusScan\.scanAttachments .*unknown key/);
  assert.match(
    err({ maxHoldMs: 1, bus: { maxHoldMs: 2 } }),
    /at virusScan\.bus\.maxHoldMs .*set virusScan\.maxHoldMs or/,
  );
});

test('protocol: INSTREAM framing, replies, VERSION, sizes', () => {
  const frames = instreamFrames(Buffer.from('abcdefghij'), 4);
  assert.deepEqual(
    Buffer.concat(frames),
    Buffer.concat([
      Buffer.from('zINSTREAM\0'),
      Buffer.from([0, 0, 0, 4]),
      Buffer.from('abcd'),
      Buffer.from([0, 0, 0, 4]),
      Buffer.from('efgh'),
      Buffer.from([0, 0, 0, 2]),
      Buffer.from('ij'),
      Buffer.from([0, 0, 0, 0]),
    ]),
  );
  assert.deepEqual(parseInstreamReply('stream: OK'), { kind: 'clean' });
  assert.deepEqual(parseInstreamReply('stream: Eicar-Test-Signature.UNOFFICIAL FOUND'), {
    kind: 'found',
    signatures: ['Eicar-Test-Signature.UNOFFICIAL'],
  });
  assert.deepEqual(parseInstreamReply('stream: A FOUND\0stream: B FOUND\0stream: OK'), {
    kind: 'found',
    signatures: ['A', 'B'],
  });
  assert.deepEqual(parseInstreamReply('INSTREAM size limit exceeded. ERROR'), { kind: 'size-limit' });
  assert.equal(parseInstreamReply("stream: Can't allocate memory ERROR").kind, 'error');
  assert.equal(parseInstreamReply('').kind, 'error');
  assert.equal(parseInstreamReply('stream: maybe').kind, 'error');
  assert.deepEqual(parseVersion('ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025\0'), {
    raw: 'ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025',
    engine: 'ClamAV 1.4.6',
    database: '27470',
    databaseDate: 'Thu Nov 27 09:32:01 2025',
  });
  assert.deepEqual(parseVersion('ClamAV 1.4.6'), { raw: 'ClamAV 1.4.6', engine: 'ClamAV 1.4.6' });
  assert.equal(parseClamdSize('25M'), 25 * 1024 * 1024);
  assert.equal(parseClamdSize('512k'), 512 * 1024);
  assert.equal(parseClamdSize(1000), 1000);
  assert.throws(() => parseClamdSize('lots'));
});

test('header: prepend keeps the line ending; strip removes every copy with its folded lines', () => {
  assert.equal(prependHeader(Buffer.from('A: 1\r\n\r\nbody'), 'X-S', 'ok').toString(), 'X-S: ok\r\nA: 1\r\n\r\nbody');
  assert.equal(prependHeader(Buffer.from('A: 1\n\nbody'), 'X-S', 'ok').toString(), 'X-S: ok\nA: 1\n\nbody');
  assert.equal(
    prependHeader(Buffer.from('A: 1\r\n\r\n'), 'X-S', 'bad\r\nInjected: yes').toString(),
    'X-S: bad Injected: yes\r\nA: 1\r\n\r\n',
  );
  const raw = Buffer.from('x-s: forged\r\n more\r\nA: 1\r\nX-S: again\r\n\r\nX-S: in the body stays\r\n');
  assert.equal(stripHeader(raw, 'X-S').toString(), 'A: 1\r\n\r\nX-S: in the body stays\r\n');
  const untouched = Buffer.from('A: 1\r\nX-Sx: other\r\n\r\nbody');
  assert.equal(stripHeader(untouched, 'X-S'), untouched);
});

test('metrics: signature family is a low-cardinality label', () => {
  assert.equal(signatureFamily('Win.Trojan.Agent-123456'), 'Win.Trojan');
  assert.equal(signatureFamily('Doc.Dropper.Agent-6400'), 'Doc.Dropper');
  assert.equal(signatureFamily('Eicar-Signature'), 'Eicar');
  assert.equal(signatureFamily('Eicar-Test-Signature FOUND'), 'Eicar');
  assert.equal(signatureFamily('Sanesecurity.Foxhole.Zip_fs220'), 'Sanesecurity.Foxhole');
});
