// Property test (fast-check): well-formed multipart messages carrying a PE, mutated the ways MIME-confusion attacks
// do (type junk and comments, duplicate headers, odd transfer encodings, missing blank lines, LF line ends, stray
// bytes outside the payload). For every mutant: the stage never throws, and when it passes the message, neither
// postal-mime nor mailparser (stand-ins for mail clients) finds an executable in what is passed on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { simpleParser } from 'mailparser';
import PostalMime from 'postal-mime';
import { b64, PE_INVOICE_EXE } from '@mailgate/testkit';
import { evaluateMessage, policyConfig } from '../src/index.js';

const RUNS = Number(process.env['MAILGATE_FC_RUNS'] ?? 300);

const policy = policyConfig({
  mode: 'block-list',
  rules: [{ name: 'no-exe', match: { trueType: ['exe'] }, action: 'reject' }],
});
const strip = policyConfig({
  mode: 'block-list',
  rules: [{ name: 'strip-exe', match: { trueType: ['exe'] }, action: 'strip' }],
});

interface Msg {
  top: string[];
  parts: { headers: string[]; body: string }[];
  boundary: string;
  eol: string;
  blankAfter: boolean[];
  /** Index of the executable's part. */
  exe: number;
}

const base = (boundary: string, name: string, textFirst: boolean): Msg => {
  const text = { headers: ['Content-Type: text/plain; charset=utf-8'], body: 'Please see the attached file.' };
  const exe = {
    headers: [
      `Content-Type: application/octet-stream; name="${name}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${name}"`,
    ],
    body: b64(PE_INVOICE_EXE),
  };
  return {
    top: [`Content-Type: multipart/mixed; boundary="${boundary}"`],
    parts: textFirst ? [text, exe] : [exe, text],
    boundary,
    eol: '\r\n',
    blankAfter: [true, true],
    exe: textFirst ? 1 : 0,
  };
};

type Mutation = (m: Msg, r: number) => void;
const exeIdx = (m: Msg) => m.exe;
const MUTATIONS: Record<string, Mutation> = {
  typeComment: (m) => (m.top[0] = m.top[0]!.replace('multipart/mixed', 'multipart/mixed(x)')),
  typeJunk: (m, r) =>
    (m.top[0] = m.top[0]!.replace(
      'multipart/mixed',
      ['multipart/mix=ed', 'multipart/mixed,', 'multipart/mixed junk', 'multipart/alternative', 'multipart'][r % 5]!,
    )),
  dupTypeBefore: (m) => m.top.unshift('Content-Type: text/plain'),
  dupTypeAfter: (m) => m.top.push('Content-Type: text/plain'),
  boundaryInComment: (m) => (m.top[0] = `Content-Type: multipart/mixed (boundary="${m.boundary}")`),
  fakeBoundaryFirst: (m) => (m.top[0] = m.top[0]!.replace('; boundary=', '; boundary="fake"; boundary=')),
  boundaryOnText: (m) => (m.top[0] = `Content-Type: text/plain; boundary="${m.boundary}"`),
  cteComment: (m) => {
    const p = m.parts[exeIdx(m)]!;
    p.headers = p.headers.map((h) => (h.startsWith('Content-Transfer') ? 'Content-Transfer-Encoding: base64 (b)' : h));
  },
  cteVariant: (m, r) => {
    const p = m.parts[exeIdx(m)]!;
    const v = ['x-base64', 'BASE64', 'base-64', 'x-unknown', ' base64 '][r % 5]!;
    p.headers = p.headers.map((h) => (h.startsWith('Content-Transfer') ? `Content-Transfer-Encoding: ${v}` : h));
  },
  cteDup: (m) => m.parts[exeIdx(m)]!.headers.unshift('Content-Transfer-Encoding: 7bit'),
  typeDupInPart: (m) => m.parts[exeIdx(m)]!.headers.unshift('Content-Type: text/plain'),
  renameDecoy: (m) => {
    const p = m.parts[exeIdx(m)]!;
    p.headers = p.headers.map((h) => h.replace('filename="', 'filename="decoy.pdf"; filename="'));
  },
  noDisposition: (m) => {
    const p = m.parts[exeIdx(m)]!;
    p.headers = p.headers.filter((h) => !h.startsWith('Content-Disposition'));
  },
  declaredText: (m) => {
    const p = m.parts[exeIdx(m)]!;
    p.headers = p.headers.map((h) => (h.startsWith('Content-Type') ? 'Content-Type: text/plain' : h));
  },
  noBlankLine: (m, r) => (m.blankAfter[r % m.blankAfter.length] = false),
  lfOnly: (m) => (m.eol = '\n'),
  headerCase: (m) => (m.top[0] = m.top[0]!.toUpperCase().replace(m.boundary.toUpperCase(), m.boundary)),
};
const NAMES = Object.keys(MUTATIONS);

function render(m: Msg): string {
  const e = m.eol;
  let s = `From: a@sender.test${e}To: u@example.test${e}Subject: prop${e}MIME-Version: 1.0${e}${m.top.join(e)}${e}${e}`;
  m.parts.forEach((p, i) => {
    s += `--${m.boundary}${e}${p.headers.join(e)}${e}${m.blankAfter[i] ? e : ''}${p.body.replace(/\r\n/g, e)}${e}`;
  });
  return `${s}--${m.boundary}--${e}`;
}

/** Attachments postal-mime and mailparser find that start with the PE's first bytes. */
async function clientsSeeExe(raw: Buffer): Promise<string[]> {
  const out: string[] = [];
  const magic = PE_INVOICE_EXE.subarray(0, 32);
  const pm = await PostalMime.parse(raw, { attachmentEncoding: 'arraybuffer' });
  for (const a of pm.attachments) {
    const c = Buffer.from(a.content as ArrayBuffer);
    if (c.subarray(0, 32).equals(magic)) out.push(`postal-mime:${a.filename}`);
  }
  const mp = await simpleParser(raw);
  for (const a of mp.attachments) if (a.content.subarray(0, 32).equals(magic)) out.push(`mailparser:${a.filename}`);
  return out;
}

const arbMessage = fc
  .record({
    boundary: fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,40}[A-Za-z0-9]$/),
    name: fc.constantFrom('invoice.exe', 'setup.scr', 'readme.txt', 'photo.jpg', 'x'),
    textFirst: fc.boolean(),
    mutations: fc.array(fc.tuple(fc.constantFrom(...NAMES), fc.nat(100)), { maxLength: 3 }),
    noise: fc.option(fc.tuple(fc.nat(), fc.constantFrom('\r\n', ' ', '(', '"', ';', '\t', '=', '--')), {
      nil: undefined,
    }),
  })
  .map((o) => {
    const m = base(o.boundary, o.name, o.textFirst);
    for (const [n, r] of o.mutations) MUTATIONS[n]!(m, r);
    let raw = render(m);
    if (o.noise) {
      // A stray token in the header area of the message (never inside the payload).
      const limit = raw.indexOf(b64(PE_INVOICE_EXE).slice(0, 20));
      const at = o.noise[0] % Math.max(1, limit);
      raw = raw.slice(0, at) + o.noise[1] + raw.slice(at);
    }
    return { raw: Buffer.from(raw, 'latin1'), mutations: o.mutations.map(([n]) => n) };
  });

test(`property: mutated multipart messages never pass an executable (${RUNS} runs)`, async () => {
  await fc.assert(
    fc.asyncProperty(arbMessage, async ({ raw }) => {
      for (const cfg of [policy, strip]) {
        const r = await evaluateMessage(cfg, raw); // must not throw
        if (r.verdict.kind !== 'pass') continue;
        const seen = await clientsSeeExe(r.raw ?? raw);
        assert.deepEqual(seen, [], `passed with an executable: ${JSON.stringify(r.details).slice(0, 400)}`);
      }
    }),
    { numRuns: RUNS },
  );
});

test('a whitespace-only header line before a delimiter that looks like a header field (fast-check seed -2116506196)', async () => {
  // The boundary `::(A?a` sits in a comment (read only leniently), and a tab-only line follows the Content-Type.
  // RFC 5322 folds the tab line into the field, and the delimiter line `--::(A?a` parses as a field named `--`, so a
  // strict reading runs the headers on into the executable's part and leaves its body in the preamble; postal-mime
  // ends the headers at the tab line and shows the executable. Both readings are judged.
  const m = base('::(A?a', 'x', false);
  MUTATIONS['boundaryInComment']!(m, 0);
  const raw = Buffer.from(render(m).replace('")\r\n\r\n', '")\r\n\t\r\n'), 'latin1');
  assert.ok((await clientsSeeExe(raw)).length > 0, 'a client shows the executable');
  for (const cfg of [policy, strip]) {
    const r = await evaluateMessage(cfg, raw);
    assert.notEqual(r.verdict.kind, 'pass', JSON.stringify(r.details).slice(0, 400));
  }
});
