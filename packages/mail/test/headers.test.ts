// Header block boundary, fields with duplicates, structured values (comments, quoted strings, RFC 2231/2047),
// transfer-encoding readings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeBody,
  encodingReadings,
  fieldValues,
  headerEnd,
  MalformedMimeError,
  parseStructured,
  readHeaderBlock,
  stripComments,
  walkMime,
} from '../src/index.js';

const b = (s: string) => Buffer.from(s, 'latin1');

test('headerEnd: CRLF, bare LF, obs-fold, no headers, headers only, size limit', () => {
  assert.deepEqual(headerEnd(b('A: 1\r\nB: 2\r\n\r\nbody')), { end: 12, bodyStart: 14, blankLine: true });
  assert.deepEqual(headerEnd(b('A: 1\nB: 2\n\nbody')), { end: 10, bodyStart: 11, blankLine: true });
  // A whitespace-only line continues the field (obs-FWS); the block ends at the empty line after it. Readers that
  // take it for the empty line start the body after it: the second reading.
  const ws = headerEnd(b('A: 1\r\n \r\n x\r\n\r\nbody'));
  assert.equal(ws.bodyStart, 15);
  assert.equal(ws.altBodyStart, 9);
  assert.equal(ws.altCause, 'whitespace-only line');
  assert.deepEqual(headerEnd(b('\r\nbody')), { end: 0, bodyStart: 2, blankLine: true });
  assert.deepEqual(headerEnd(b('just text\r\n')), { end: 0, bodyStart: 0, blankLine: false });
  assert.deepEqual(headerEnd(b('A: 1\r\nB: 2\r\n')), { end: 12, bodyStart: 12, blankLine: false });
  assert.throws(() => headerEnd(b(`A: ${'x'.repeat(100)}\r\n\r\n`), 0, undefined, 50), MalformedMimeError);
});

test('headerEnd: a line that is not a field gives a second body start (headers ran into the body)', () => {
  const raw = b('Content-Type: x\r\nTVqQAAMA\r\nmore\r\n\r\nafter');
  const h = headerEnd(raw);
  assert.equal(h.altBodyStart, 17);
  assert.equal(h.altCause, 'non-field line');
  assert.equal(h.bodyStart, raw.indexOf('after'));
  const none = headerEnd(b('Content-Type: x\r\nTVqQAAMA\r\n'));
  assert.equal(none.bodyStart, 17, 'no blank line: the body starts at the first non-field line');
});

test('the walk names why headers have a second reading: a non-field line, or a line of only spaces or tabs', () => {
  const stray = walkMime(b('Subject: x\r\nTVqQAAMA\r\nmore\r\n\r\nbody\r\n'));
  assert.deepEqual(stray.anomalies, ['part root: header lines run into the body (no blank line before it)']);
  const ws = walkMime(b('Subject: x\r\n \t\r\nX: y\r\n\r\nbody\r\n'));
  assert.deepEqual(ws.anomalies, [
    'part root: a header line of only spaces or tabs (some readers end the headers there)',
  ]);
});

test('fields keep duplicates, in order, unfolded', () => {
  const h = readHeaderBlock(b('Content-Type: a\r\nX: 1\r\nContent-type: b;\r\n\tc=d\r\n\r\n'), 0, 47);
  assert.deepEqual(fieldValues(h, 'content-type'), ['a', 'b;\tc=d']);
});

test('structured values: comments, quoted strings, duplicates, RFC 2231 and RFC 2047', () => {
  assert.equal(stripComments('multipart/mixed(c (nested) \\) x); a="(kept)"'), 'multipart/mixed ; a="(kept)"');
  const ct = parseStructured('Multipart/Mixed (comment); boundary="a;b(c)"; Boundary=second');
  assert.equal(ct.value, 'multipart/mixed');
  assert.equal(ct.params['boundary'], 'a;b(c)');
  assert.deepEqual(ct.all['boundary'], ['a;b(c)', 'second']);
  const cd = parseStructured(`attachment; filename="a.pdf"; filename*0*=utf-8''inv%C3%B6; filename*1=ice.exe`);
  assert.deepEqual(cd.all['filename'], ['invöice.exe', 'a.pdf'], 'RFC 2231 first, then the plain one');
  assert.equal(parseStructured('inline; filename="=?utf-8?B?aW52b2ljZS5leGU=?="').params['filename'], 'invoice.exe');
  assert.equal(parseStructured('multipart / mixed; boundary=x').value, 'multipart/mixed');
  assert.equal(parseStructured('multipart/mixed(c)', true).value, 'multipart/mixed(c)', 'the comment-blind reading');
});

test('transfer encodings: exact names, the closest known one plus raw for anything else', () => {
  assert.deepEqual(encodingReadings('BASE64').decodings, ['base64']);
  assert.deepEqual(encodingReadings(undefined).decodings, ['identity']);
  assert.deepEqual(encodingReadings('base64 (x)').decodings, ['base64', 'identity']);
  assert.deepEqual(encodingReadings('x-base64').decodings, ['base64', 'identity']);
  assert.deepEqual(encodingReadings('quoted-printable(qp)').decodings, ['quoted-printable', 'identity']);
  assert.deepEqual(encodingReadings('x-uuencode').decodings, ['uuencode', 'identity']);
  assert.deepEqual(encodingReadings('7-bit').decodings, ['identity']);
  assert.deepEqual(encodingReadings('x-weird').decodings, ['identity', 'base64']);
  assert.ok(encodingReadings('x-weird').anomaly);
  assert.equal(decodeBody(b('aGVsbG8=\r\n'), 'base64').toString(), 'hello');
  assert.equal(decodeBody(b('h=C3=A9=\r\nllo'), 'quoted-printable').toString(), 'héllo');
  assert.equal(decodeBody(b('begin 644 x\r\n%:&5L;&\\`\r\n`\r\nend\r\n'), 'uuencode').toString(), 'hello');
});
