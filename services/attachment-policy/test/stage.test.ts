// The pure stage: MIME walk, true types, archives, rules, strip. No I/O.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import PostalMime from 'postal-mime';
import { MAIL_HEADERS } from '@mailgate/contracts';
import { createPolicyStage, evaluateMessage, type PartReport } from '../src/index.js';
import {
  cfg,
  EXE,
  gzip,
  lieAboutSizes,
  markEncrypted,
  message,
  PDF,
  pipelineMessage,
  plainMessage,
  PNG,
  stageContext,
  tar,
  TEXT,
  zip,
} from './helpers.js';

const parts = (d: Record<string, unknown>) => d['parts'] as PartReport[];
const reason = (v: { kind: string }) => (v as { reason?: string }).reason ?? '';

describe('allowed content passes unchanged', () => {
  test('a PDF attachment: pass, no new raw bytes (byte-identical), part recorded with its rule', async () => {
    const raw = message([{ content: PDF, filename: 'report.pdf', type: 'application/pdf' }]);
    const out = await createPolicyStage(cfg())(pipelineMessage(raw), stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(out.raw, undefined, 'the runner forwards the original bytes');
    const [p] = parts(out.details!);
    assert.equal(p!.filename, 'report.pdf');
    assert.equal(p!.trueType, 'pdf');
    assert.equal(p!.rule, 'documents');
    assert.equal(p!.action, 'allow');
  });

  test('plain text, images, text attachments and an archive of PDFs pass', async () => {
    assert.equal((await evaluateMessage(cfg(), plainMessage('hello'))).verdict.kind, 'pass');
    const raw = message([
      { content: PNG, filename: 'logo.png', type: 'image/png' },
      { content: TEXT, filename: 'notes.txt', type: 'text/plain' },
      { content: zip({ 'a.pdf': PDF, 'sub/b.pdf': PDF }), filename: 'docs.zip', type: 'application/zip' },
    ]);
    const r = await evaluateMessage(cfg(), raw);
    assert.equal(r.verdict.kind, 'pass', JSON.stringify(r.details));
    assert.equal(r.raw, undefined);
    assert.deepEqual(
      parts(r.details).map((p) => p.rule),
      ['images', 'text', 'archives'],
    );
    assert.equal(parts(r.details)[2]!.innerFiles, 2);
  });
});

describe('judged by what a file is', () => {
  test('an .exe renamed .pdf is caught by its true type (mismatch rule, and the allow-list without it)', async () => {
    const raw = message([{ content: EXE, filename: 'invoice.pdf', type: 'application/pdf' }]);
    const r = await evaluateMessage(cfg(), raw);
    assert.equal(r.verdict.kind, 'reject');
    assert.match(reason(r.verdict), /type-mismatch.*extension pdf, content is exe.*invoice\.pdf/);
    assert.equal(parts(r.details)[0]!.trueType, 'exe');
    // Without the mismatch rule the allow-list still refuses: exe is not listed, whatever the name says.
    const noMismatch = cfg({ rules: [{ name: 'documents', match: { trueType: ['pdf'] }, action: 'allow' }] });
    const r2 = await evaluateMessage(noMismatch, raw);
    assert.equal(r2.verdict.kind, 'reject');
    assert.equal(parts(r2.details)[0]!.rule, 'unlisted');
  });

  test('a declared type that lies is a mismatch too (exe declared image/png, unnamed)', async () => {
    const r = await evaluateMessage(cfg(), message([{ content: EXE, type: 'image/png' }]));
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(parts(r.details)[0]!.rule, 'type-mismatch');
  });

  test('an exe hidden as a text/plain body part is judged as an attachment', async () => {
    const raw = Buffer.from(
      `From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${EXE.toString('base64')}\r\n`,
    );
    const r = await evaluateMessage(cfg(), raw);
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(parts(r.details)[0]!.trueType, 'exe');
  });

  test('double extensions and trailing dots/spaces', async () => {
    const blockList = cfg({
      mode: 'block-list',
      rules: [
        { name: 'double-extension', match: { doubleExtension: true }, action: 'reject' },
        { name: 'executables', match: { extension: ['exe', 'scr', 'js'] }, action: 'reject' },
      ],
    });
    const judge = async (filename: string, content: Buffer = TEXT) =>
      parts((await evaluateMessage(blockList, message([{ content, filename }]))).details)[0]!.rule;
    assert.equal(await judge('invoice.pdf.exe'), 'double-extension');
    assert.equal(await judge('photo.JPG.scr'), 'double-extension');
    assert.equal(await judge('invoice.exe. . '), 'executables', 'Windows drops trailing dots and spaces');
    assert.equal(await judge('payload.js...'), 'executables');
    assert.equal(await judge('invoice\u202Efdp.exe'), 'executables', 'bidi override removed, real extension seen');
    assert.equal(await judge('report.final.pdf', PDF), 'no-rule', 'an unknown middle segment is no decoy');
    assert.equal(await judge('logs.tar.gz', gzip(TEXT)), 'no-rule', 'compression suffixes are legitimate');
    assert.equal(await judge('setup-1.2.3.txt'), 'no-rule');
  });

  test('rules by declared type, MIME wildcards and first-match-wins order', async () => {
    const c = cfg({
      mode: 'block-list',
      rules: [
        { name: 'allow-pdf', match: { trueType: ['application/pdf'] }, action: 'allow' },
        { name: 'no-images', match: { declaredType: ['image/*'] }, action: 'strip' },
      ],
    });
    const r = await evaluateMessage(
      c,
      message([
        { content: PNG, filename: 'a.png', type: 'image/png' },
        { content: PDF, filename: 'a.pdf', type: 'image/png' },
      ]),
    );
    assert.deepEqual(
      parts(r.details).map((p) => p.rule),
      ['no-images', 'allow-pdf'],
    );
  });
});

describe('archives', () => {
  test('an exe inside a zip inside a zip is found and rejects the message', async () => {
    const inner = zip({ 'evil.exe': EXE, 'readme.txt': TEXT });
    const outer = zip({ 'inner.zip': inner, 'doc.pdf': PDF });
    const r = await evaluateMessage(
      cfg(),
      message([{ content: outer, filename: 'outer.zip', type: 'application/zip' }]),
    );
    assert.equal(r.verdict.kind, 'reject');
    const p = parts(r.details)[0]!;
    assert.equal(p.rule, 'unlisted');
    assert.match(p.why, /^outer\.zip\/inner\.zip\/evil\.exe: type exe is not on the allow-list/);
    assert.deepEqual(
      p.inner?.map((i) => [i.path, i.trueType, i.rule]),
      [['outer.zip/inner.zip/evil.exe', 'exe', 'unlisted']],
    );
    assert.equal(p.innerFiles, 4);
  });

  test('tar.gz and gz archives are opened too', async () => {
    const tgz = gzip(tar({ 'dir/ok.pdf': PDF, 'dir/run.exe': EXE }));
    const r = await evaluateMessage(cfg(), message([{ content: tgz, filename: 'bundle.tgz' }]));
    assert.equal(r.verdict.kind, 'reject');
    assert.deepEqual(
      parts(r.details)[0]!.inner?.map((i) => i.path),
      ['bundle.tar/dir/run.exe'],
    );
    const gz = await evaluateMessage(cfg(), message([{ content: gzip(PDF), filename: 'report.pdf.gz' }]));
    assert.equal(gz.verdict.kind, 'pass', JSON.stringify(gz.details));
  });

  test('an encrypted zip entry gets encryptedAction (default reject; configurable)', async () => {
    const enc = markEncrypted(zip({ 'secret.pdf': PDF }));
    const r = await evaluateMessage(cfg(), message([{ content: enc, filename: 'secret.zip' }]));
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(parts(r.details)[0]!.rule, 'encrypted-archive');
    const lenient = await evaluateMessage(
      cfg({ archives: { encryptedAction: 'allow' } }),
      message([{ content: enc, filename: 'secret.zip' }]),
    );
    assert.equal(lenient.verdict.kind, 'pass');
  });

  test('zip-bomb limits: ratio, total bytes, entry count, depth, and a lying size header', async () => {
    const judge = async (content: Buffer, over = {}) => {
      const r = await evaluateMessage(cfg({ archives: over }), message([{ content, filename: 'x.zip' }]));
      const p = parts(r.details)[0]!;
      return { kind: r.verdict.kind, rule: p.rule, why: p.why };
    };
    const zeros = zip({ 'zeros.txt': Buffer.alloc(8 * 1024 * 1024) }, 9);
    let j = await judge(zeros);
    assert.deepEqual([j.kind, j.rule], ['reject', 'archive-limits']);
    assert.match(j.why, /compression ratio \d+ over 100/);
    j = await judge(zip({ 'a.txt': Buffer.alloc(300_000, 0x61), 'b.txt': Buffer.alloc(300_000, 0x62) }, 0), {
      maxTotalBytes: 500_000,
    });
    assert.match(j.why, /more than 500000 uncompressed bytes/);
    const many: Record<string, Buffer> = {};
    for (let i = 0; i < 30; i++) many[`f${i}.txt`] = TEXT;
    j = await judge(zip(many), { maxEntries: 20 });
    assert.match(j.why, /more than 20 archive entries/);
    const deep = zip({ 'l2.zip': zip({ 'l3.zip': zip({ 'l4.zip': zip({ 'a.txt': TEXT }) }) }) });
    j = await judge(deep);
    assert.deepEqual([j.kind, j.rule], ['reject', 'archive-limits']);
    assert.match(j.why, /nested deeper than 3/);
    assert.equal((await judge(deep, { maxDepth: 4 })).kind, 'pass');
    // The central directory claims 10 bytes; inflating stops at 11 and the lie is a limit violation.
    j = await judge(lieAboutSizes(zip({ 'a.txt': Buffer.alloc(50_000, 0x61) }, 9), 10));
    assert.deepEqual([j.kind, j.rule], ['reject', 'archive-limits']);
    assert.match(j.why, /inflates beyond its declared 10 bytes/);
  });

  test('a corrupt zip is unreadable-archive, not a crash', async () => {
    const z = zip({ 'a.pdf': PDF });
    const broken = Buffer.concat([z.subarray(0, 40), Buffer.alloc(20, 0xee), z.subarray(60)]);
    const r = await evaluateMessage(cfg(), message([{ content: broken, filename: 'a.zip' }]));
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(parts(r.details)[0]!.rule, 'unreadable-archive');
    assert.match(parts(r.details)[0]!.why, /CRC-32 mismatch/);
    const traversal = await evaluateMessage(
      cfg(),
      message([{ content: zip({ '../../evil.pdf': PDF }), filename: 'b.zip' }]),
    );
    assert.equal(parts(traversal.details)[0]!.rule, 'unreadable-archive');
  });
});

describe('strip and silent-delete', () => {
  const stripExe = cfg({
    mode: 'block-list',
    rules: [{ name: 'no-exe', match: { trueType: ['exe'] }, action: 'strip' }],
  });

  test('strip leaves valid MIME: remaining parts byte-identical, notice present, header added', async () => {
    const raw = message([
      { content: PDF, filename: 'report.pdf', type: 'application/pdf' },
      { content: EXE, filename: 'setup.exe', type: 'application/x-msdownload' },
      { content: PNG, filename: 'logo.png', type: 'image/png' },
    ]);
    const r = await evaluateMessage(stripExe, raw);
    assert.equal(r.verdict.kind, 'pass');
    assert.ok(r.raw);
    const out = r.raw!;
    const text = out.toString('latin1');
    assert.match(text, new RegExp(`^${MAIL_HEADERS.attachmentPolicy}: stripped=1; deleted=0; rules=no-exe\r\n`));
    // Everything but the exe part is byte-for-byte where it was.
    const src = raw.toString('latin1');
    const exeStart = src.indexOf('Content-Type: application/x-msdownload');
    const exeEnd = src.indexOf('\r\n--mg-b1', exeStart);
    const headerLen = text.indexOf('\r\n') + 2;
    assert.equal(text.slice(headerLen, headerLen + exeStart), src.slice(0, exeStart));
    assert.ok(text.endsWith(src.slice(exeEnd)));
    for (const parser of ['postal-mime', 'mailparser'] as const) {
      const atts =
        parser === 'postal-mime'
          ? (await PostalMime.parse(out)).attachments.map((a) => ({
              name: a.filename,
              data: Buffer.from(a.content as ArrayBuffer),
            }))
          : (await simpleParser(out)).attachments.map((a) => ({ name: a.filename ?? null, data: a.content }));
      const byName = new Map(atts.map((a) => [a.name, a.data]));
      assert.deepEqual(byName.get('report.pdf'), PDF, parser);
      assert.deepEqual(byName.get('logo.png'), PNG, parser);
      assert.equal(byName.has('setup.exe'), false, parser);
    }
    const parsed = await PostalMime.parse(out);
    assert.match(parsed.text ?? '', /The attachment "setup\.exe" was removed .*rule no-exe \(type exe\)/);
    // And the rewritten message is itself clean under the same policy.
    const again = await evaluateMessage(stripExe, out);
    assert.equal(again.verdict.kind, 'pass');
    assert.equal(again.raw, undefined);
  });

  test('strip of the whole body (single-part message) keeps the message headers', async () => {
    const raw = Buffer.from(
      `From: a@b.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream; name="x.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n${EXE.toString('base64')}\r\n`,
    );
    const r = await evaluateMessage(stripExe, raw);
    const out = r.raw!.toString('latin1');
    assert.match(
      out,
      /\r\nFrom: a@b\.test\r\nSubject: s\r\nMIME-Version: 1\.0\r\nContent-Type: text\/plain; charset=utf-8\r\n/,
    );
    assert.doesNotMatch(out, /name="x\.exe"/);
    assert.match((await PostalMime.parse(r.raw!)).text ?? '', /"x\.exe" was removed/);
  });

  test('silent-delete cuts the part without a notice; a non-ASCII name in a notice is base64 UTF-8', async () => {
    const del = cfg({
      mode: 'block-list',
      rules: [{ name: 'no-exe', match: { trueType: ['exe'] }, action: 'silent-delete' }],
    });
    const raw = message([
      { content: PDF, filename: 'a.pdf', type: 'application/pdf' },
      { content: EXE, filename: 'b.exe' },
    ]);
    const r = await evaluateMessage(del, raw);
    const parsed = await PostalMime.parse(r.raw!);
    assert.deepEqual(
      parsed.attachments.map((a) => a.filename),
      ['a.pdf'],
    );
    assert.doesNotMatch(r.raw!.toString('latin1'), /removed/);
    assert.deepEqual(r.details['removed'], [{ part: '3', mode: 'silent-delete', rule: 'no-exe' }]);

    const s = await evaluateMessage(
      stripExe,
      message([{ content: EXE, typeParams: '', dispositionParams: `; filename*=UTF-8''%C3%A9t%C3%A9.exe` }]),
    );
    assert.match((await PostalMime.parse(s.raw!)).text ?? '', /"été\.exe" was removed/);
  });

  test('deleting every part of a multipart leaves an empty text part (still valid MIME)', async () => {
    const del = cfg({
      mode: 'block-list',
      rules: [{ name: 'no-exe', match: { trueType: ['exe'] }, action: 'silent-delete' }],
    });
    const raw = Buffer.from(
      'From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n' +
        `Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${EXE.toString('base64')}\r\n--b--\r\n`,
    );
    const r = await evaluateMessage(del, raw);
    const again = await evaluateMessage(del, r.raw!);
    assert.equal(again.verdict.kind, 'pass');
    assert.equal((again.details['warnings'] as unknown) ?? undefined, undefined);
    assert.equal((await PostalMime.parse(r.raw!)).attachments.length, 0);
  });
});

describe('dry-run and limits', () => {
  test('a dry-run rule only records: the decision is the one without it', async () => {
    const c = cfg({
      rules: [
        { name: 'trial-no-pdf', match: { trueType: ['pdf'] }, action: 'reject', dryRun: true },
        { name: 'documents', match: { trueType: ['pdf'] }, action: 'allow' },
      ],
    });
    const raw = message([{ content: PDF, filename: 'a.pdf' }]);
    const r = await evaluateMessage(c, raw);
    assert.equal(r.verdict.kind, 'pass');
    assert.equal(r.raw, undefined);
    assert.deepEqual(r.details['dryRun'], [{ part: '2', rule: 'trial-no-pdf', action: 'reject' }]);
    assert.equal(parts(r.details)[0]!.rule, 'documents');
    // Trialling the allow-list itself: unlisted.dryRun records what it would reject.
    const trial = cfg({ rules: [], unlisted: { dryRun: true } });
    const t = await evaluateMessage(trial, message([{ content: EXE, filename: 'a.exe' }]));
    assert.equal(t.verdict.kind, 'pass');
    assert.deepEqual(t.details['dryRun'], [{ part: '2', rule: 'unlisted', action: 'reject' }]);
  });

  test('max attachment size and count', async () => {
    const big = cfg({ limits: { maxAttachmentBytes: 100 } });
    const r = await evaluateMessage(big, message([{ content: PDF, filename: 'a.pdf' }]));
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(parts(r.details)[0]!.rule, 'max-attachment-size');
    const few = cfg({ limits: { maxAttachments: 2, action: 'strip' } });
    const atts = [1, 2, 3].map((i) => ({ content: PNG, filename: `${i}.png`, type: 'image/png' }));
    const c = await evaluateMessage(few, message(atts));
    assert.equal(c.verdict.kind, 'pass');
    assert.deepEqual(
      (await PostalMime.parse(c.raw!)).attachments.map((a) => a.filename),
      ['1.png', '2.png'],
    );
  });
});

describe('filenames', () => {
  const name = async (a: Parameters<typeof message>[0][number]) =>
    parts((await evaluateMessage(cfg(), message([a]))).details)[0]!.filename;

  test('RFC 2231 (charset, continuations) and RFC 2047 encoded words', async () => {
    assert.equal(
      await name({ content: PDF, typeParams: '', dispositionParams: `; filename*=UTF-8''%E2%82%AC%20rapport.pdf` }),
      '€ rapport.pdf',
    );
    assert.equal(
      await name({
        content: PDF,
        typeParams: '',
        dispositionParams: `;\r\n filename*0*=iso-8859-1''r%E9sum; filename*1="e final"; filename*2=.pdf`,
      }),
      'résume final.pdf',
    );
    assert.equal(
      await name({ content: PDF, dispositionParams: '', typeParams: '; name="=?UTF-8?B?0YTQsNC50LsucGRm?="' }),
      'файл.pdf',
    );
    assert.equal(
      await name({ content: PDF, dispositionParams: '', typeParams: '; name="=?ISO-8859-1?Q?caf=E9?=.pdf"' }),
      'café.pdf',
    );
    // An encoded name hiding an executable extension is still caught.
    const r = await evaluateMessage(
      cfg(),
      message([{ content: TEXT, typeParams: '', dispositionParams: `; filename*=UTF-8''notes.txt.js` }]),
    );
    assert.equal(r.verdict.kind, 'reject');
  });
});

describe('malformed MIME never throws', () => {
  const head = 'From: a@b.test\r\nMIME-Version: 1.0\r\n';

  test('deep nesting, broken boundaries and absurd headers get the malformed outcome with the error', async () => {
    let deep = 'x\r\n';
    for (let i = 40; i > 0; i--)
      deep = `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n${deep}\r\n--b${i}--\r\n`;
    const cases: [string, Buffer, RegExp][] = [
      ['deep nesting', Buffer.from(head + deep), /nesting deeper than 32/],
      ['no boundary param', Buffer.from(`${head}Content-Type: multipart/mixed\r\n\r\nbody\r\n`), /without a boundary/],
      [
        'no delimiter',
        Buffer.from(`${head}Content-Type: multipart/mixed; boundary=zz\r\n\r\n--yy\r\nbody\r\n`),
        /no delimiter/,
      ],
      [
        'absurd header',
        Buffer.from(`${head}X-Junk: ${'a'.repeat(300_000)}\r\n\r\nbody\r\n`),
        /header block larger than/,
      ],
      [
        'deep message/rfc822',
        Buffer.from(head + 'Content-Type: message/rfc822\r\n\r\n'.repeat(50) + 'x'),
        /nesting deeper/,
      ],
    ];
    for (const [label, raw, error] of cases) {
      const out = await createPolicyStage(cfg())(pipelineMessage(raw), stageContext());
      assert.deepEqual(out.verdict, { kind: 'quarantine', reason: 'malformed' }, label);
      assert.match(String(out.details?.['error']), error, label);
    }
    const rej = await evaluateMessage(cfg({ malformed: { outcome: 'reject', reason: 'bad-mime' } }), cases[1]![1]);
    assert.deepEqual(rej.verdict, { kind: 'reject', reason: 'bad-mime' });
    const open = await evaluateMessage(cfg({ malformed: { outcome: 'pass' } }), cases[1]![1]);
    assert.equal(open.verdict.kind, 'pass');
    assert.equal(open.failedOpen, true);
  });

  test('lenient where mail clients are: missing closing boundary, headerless part, LF line ends, garbage', async () => {
    const noClose = Buffer.from(
      `${head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n`,
    );
    const r = await evaluateMessage(cfg(), noClose);
    assert.equal(r.verdict.kind, 'pass');
    assert.deepEqual(r.details['warnings'], ['part root: missing closing boundary']);
    const lf = message([{ content: EXE, filename: 'a.exe' }])
      .toString('latin1')
      .replace(/\r\n/g, '\n');
    assert.equal((await evaluateMessage(cfg(), Buffer.from(lf, 'latin1'))).verdict.kind, 'reject');
    for (const junk of [
      Buffer.alloc(0),
      Buffer.from('\r\n\r\n'),
      Buffer.from([0, 1, 2, 255, 254]),
      Buffer.alloc(5000, 0x2d),
    ]) {
      const out = await evaluateMessage(cfg(), junk);
      assert.ok(['pass', 'quarantine', 'reject'].includes(out.verdict.kind));
    }
  });
});
