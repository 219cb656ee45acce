// unsignedHeaderSection: mailauth gets only the header section of an unsigned message, and answers the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dkimVerify } from 'mailauth';
import { unsignedHeaderSection } from '../src/unsigned.js';

const body = Array.from({ length: 200 }, (_, i) => `line ${i} of the body, From: x@evil.test DKIM-Signature: no`).join(
  '\r\n',
);
const msg = (head: string, b = body) => Buffer.from(`${head}\r\n\r\n${b}\r\n`, 'latin1');

const UNSIGNED = [
  msg('From: Alice <alice@example.test>\r\nTo: bob@dest.test\r\nSubject: hi'),
  msg('From: "Folded\r\n Name" <a@fold.test>\r\nSubject: =?utf-8?B?w6TDtsO8?='),
  msg('From: a@one.test, b@two.test\r\nFrom: c@three.test\r\nMessage-ID: <x@y>'),
  msg('Subject: no from at all'),
  msg('From: =?iso-8859-1?q?J=F6rg?= <j@umlaut.test>', ''),
];

const NEEDS_FULL: [string, Buffer][] = [
  ['a DKIM signature', msg('DKIM-Signature: v=1; d=example.test; s=s1; b=abc\r\nFrom: a@example.test')],
  ['a signature field name in another case', msg('From: a@example.test\r\ndkim-SIGNATURE: v=1; d=x')],
  ['an ARC set', msg('ARC-Seal: i=1; a=rsa-sha256; d=fwd.test\r\nFrom: a@example.test')],
  ['a bare LF in the header section', Buffer.from('From: a@example.test\nSubject: x\r\n\r\nbody\r\n', 'latin1')],
  ['a bare CR in the header section', Buffer.from('From: a@example.test\rSubject: x\r\n\r\nbody\r\n', 'latin1')],
  ['no blank line', Buffer.from('From: a@example.test\r\nSubject: x\r\n', 'latin1')],
  ['no header section', Buffer.from('\r\nbody only\r\n', 'latin1')],
  ['nothing after the header section', Buffer.from('From: a@example.test\r\n\r\n', 'latin1')],
];

/** mailauth's answer without the fields that differ run to run. */
async function verify(raw: Buffer): Promise<unknown> {
  const r = await dkimVerify(raw, {
    resolver: () => Promise.reject(Object.assign(new Error('no DNS'), { code: 'ENOTFOUND' })),
  });
  return JSON.parse(JSON.stringify(r));
}

test('unsigned messages: the header section alone, and mailauth gives the same result as for the whole message', async () => {
  for (const raw of UNSIGNED) {
    const head = unsignedHeaderSection(raw);
    assert.ok(head, raw.toString('latin1').slice(0, 40));
    assert.ok(head.length < raw.length);
    assert.equal(head.toString('latin1'), raw.toString('latin1').slice(0, head.length));
    assert.ok(head.toString('latin1').endsWith('\r\n\r\n'));
    assert.deepEqual(await verify(head), await verify(raw));
  }
});

test('signed or unusual messages are verified whole', () => {
  for (const [what, raw] of NEEDS_FULL) assert.equal(unsignedHeaderSection(raw), null, what);
});
