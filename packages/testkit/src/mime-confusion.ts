// One file (~300 lines): a catalogue of test messages built from shared parts (the PE payload, boundaries,
// encoders); splitting the shapes up would scatter the parts each one varies.
// MIME-confusion shapes: messages that mail clients (Thunderbird, Outlook, Gmail, Apple Mail) may show with a
// clickable `invoice.exe` while a naive parser sees plain text or nothing. Each one carries the same PE file;
// tests send them through a stage or the whole pipeline and assert the executable never comes out the other end.
// Sources: the shapes in issue 15, RFC 2045/2046/2183/2231 edge cases, and public MIME-confusion research
// (parser differentials between gateways and clients).

/** A small but genuine-looking PE: DOS header + stub + `PE\0\0` and a COFF header (file-type says `exe`). */
export const PE_INVOICE_EXE: Buffer = (() => {
  const b = Buffer.alloc(512, 0);
  b.write('MZ', 0, 'latin1');
  b.writeUInt16LE(0x90, 2);
  b.writeUInt16LE(3, 4);
  b.writeUInt16LE(4, 8);
  b.writeUInt16LE(0xffff, 12);
  b.writeUInt16LE(0xb8, 16);
  b.writeUInt16LE(0x40, 24);
  b.writeUInt32LE(0x80, 0x3c); // e_lfanew
  b.write('This program cannot be run in DOS mode.\r\r\n$', 0x4e, 'latin1');
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(0x14c, 0x84); // i386
  b.writeUInt16LE(1, 0x86); // one section
  b.write('.text', 0x178, 'latin1');
  return b;
})();

export const EXE_NAME = 'invoice.exe';

export interface ConfusionShape {
  /** Short id (test names, details). */
  readonly name: string;
  /** What the trick is and what clients show. */
  readonly what: string;
  /** The raw message (CRLF unless the shape is about line ends). */
  readonly raw: Buffer;
  /** The executable as it is encoded inside the message: it must not appear in anything delivered. */
  readonly payload: string;
}

const B = 'MGB-7f3a9c';

export const b64 = (b: Buffer, eol = '\r\n'): string => (b.toString('base64').match(/.{1,76}/g) ?? []).join(eol);

/** uuencode (as `uuencode` writes it: `begin 644 name`, 45-byte lines, a backquote line, `end`). */
export function uuencode(data: Buffer, name: string, eol = '\r\n'): string {
  const ch = (n: number) => String.fromCharCode(n === 0 ? 0x60 : n + 0x20);
  const lines = [`begin 644 ${name}`];
  for (let i = 0; i < data.length; i += 45) {
    const chunk = data.subarray(i, i + 45);
    let line = ch(chunk.length);
    for (let j = 0; j < chunk.length; j += 3) {
      const [a = 0, b = 0, c = 0] = [chunk[j], chunk[j + 1], chunk[j + 2]];
      line += ch(a >> 2) + ch(((a << 4) | (b >> 4)) & 0x3f) + ch(((b << 2) | (c >> 6)) & 0x3f) + ch(c & 0x3f);
    }
    lines.push(line);
  }
  lines.push('`', 'end');
  return lines.join(eol);
}

function qp(data: Buffer): string {
  let out = '';
  let col = 0;
  for (const c of data) {
    const t =
      (c >= 0x21 && c <= 0x7e && c !== 0x3d) || c === 0x20
        ? String.fromCharCode(c)
        : `=${c.toString(16).toUpperCase().padStart(2, '0')}`;
    if (col + t.length > 73) {
      out += '=\r\n';
      col = 0;
    }
    out += t;
    col += t.length;
  }
  return out;
}

const HEAD = (subject: string, extra = '') =>
  `From: Mallory <mallory@sender.test>\r\nTo: user@example.test\r\nSubject: ${subject}\r\n` +
  `Message-ID: <${subject.replace(/[^a-z0-9]/gi, '')}@sender.test>\r\nMIME-Version: 1.0\r\n${extra}`;

const TEXT_PART = `--${B}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached invoice.\r\n`;
const EXE_B64 = b64(PE_INVOICE_EXE);
const EXE_PART = (headers = '', body = EXE_B64, boundary = B) =>
  `--${boundary}\r\nContent-Type: application/octet-stream; name="${EXE_NAME}"\r\n` +
  `Content-Disposition: attachment; filename="${EXE_NAME}"\r\n${headers || 'Content-Transfer-Encoding: base64\r\n'}\r\n${body}\r\n`;

/** A multipart message whose top-level Content-Type header line(s) are `ct` (may be several lines). */
function topLevel(name: string, what: string, ct: string, boundary = B): ConfusionShape {
  const raw = `${HEAD(name)}${ct}\r\n\r\n${TEXT_PART.replace(B, boundary)}${EXE_PART('', EXE_B64, boundary)}--${boundary}--\r\n`;
  return { name, what, raw: Buffer.from(raw, 'latin1'), payload: EXE_B64 };
}

/** A well-formed multipart/mixed whose exe part has these header lines (and this body). */
function exePart(name: string, what: string, partHeaders: string, body = EXE_B64, payload = body): ConfusionShape {
  const raw =
    `${HEAD(name)}Content-Type: multipart/mixed; boundary="${B}"\r\n\r\n${TEXT_PART}` +
    `--${B}\r\n${partHeaders}\r\n${body}\r\n--${B}--\r\n`;
  return { name, what, raw: Buffer.from(raw, 'latin1'), payload };
}

function build(): ConfusionShape[] {
  const s: ConfusionShape[] = [
    topLevel(
      'ct-comment',
      'RFC 822 comment in the type: multipart/mixed(c); clients strip it',
      `Content-Type: multipart/mixed(c); boundary="${B}"`,
    ),
    topLevel(
      'ct-equals',
      'junk inside the subtype: multipart/mix=ed',
      `Content-Type: multipart/mix=ed; boundary="${B}"`,
    ),
    topLevel('ct-comma', 'trailing comma: multipart/mixed,', `Content-Type: multipart/mixed,; boundary="${B}"`),
    topLevel(
      'ct-junk',
      'a word after the type: multipart/mixed junk',
      `Content-Type: multipart/mixed junk; boundary="${B}"`,
    ),
    topLevel(
      'ct-comment-boundary',
      'the boundary only inside a comment: multipart/mixed (boundary=...)',
      `Content-Type: multipart/mixed (boundary="${B}")`,
    ),
    topLevel(
      'ct-text-comment-boundary',
      'text/plain whose comment holds boundary=...: regex readers find it',
      `Content-Type: text/plain (boundary="${B}")`,
    ),
    topLevel(
      'ct-comment-before-param',
      'a comment with a fake boundary before the real one',
      `Content-Type: multipart/mixed; (boundary="fake";) boundary="${B}"`,
    ),
    topLevel(
      'ct-boundary-comment-after',
      'boundary value followed by a comment',
      `Content-Type: multipart/mixed; boundary=${B}(c)`,
    ),
    topLevel(
      'ct-dup-text-first',
      'two Content-Type headers, text/plain first',
      `Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary="${B}"`,
    ),
    topLevel(
      'ct-dup-multipart-first',
      'two Content-Type headers, multipart first',
      `Content-Type: multipart/mixed; boundary="${B}"\r\nContent-Type: text/plain`,
    ),
    topLevel(
      'ct-dup-boundary',
      'two boundary parameters: a fake one first',
      `Content-Type: multipart/mixed; boundary="fake"; boundary="${B}"`,
    ),
    topLevel('ct-boundary-on-text', 'boundary parameter on text/plain', `Content-Type: text/plain; boundary="${B}"`),
    topLevel('ct-no-subtype', 'multipart without subtype, boundary given', `Content-Type: multipart; boundary="${B}"`),
    topLevel('ct-spaces', 'whitespace around the slash', `Content-Type: multipart / mixed; boundary="${B}"`),
    topLevel('ct-upper', 'upper case type and parameter name', `Content-Type: MULTIPART/MIXED; BOUNDARY="${B}"`),
    topLevel(
      'ct-rfc2231-boundary',
      'boundary split into RFC 2231 continuations',
      `Content-Type: multipart/mixed; boundary*0="${B.slice(0, 4)}"; boundary*1="${B.slice(4)}"`,
    ),
    topLevel(
      'ct-space-before-colon',
      'Content-Type : (space before the colon)',
      `Content-Type : multipart/mixed; boundary="${B}"`,
    ),
    topLevel(
      'ct-folded-blank',
      'Content-Type folded over a whitespace-only line (obs-fold)',
      `Content-Type: multipart/mixed;\r\n \r\n boundary="${B}"`,
    ),
    topLevel(
      'ct-invalid-chars',
      'control-ish junk in the type: multipart/mixed"',
      `Content-Type: multipart/mixed"; boundary="${B}"`,
    ),
    exePart(
      'cte-comment',
      'Content-Transfer-Encoding: base64 (comment)',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: base64 (encoded)\r\n`,
    ),
    exePart(
      'cte-x-base64',
      'Content-Transfer-Encoding: x-base64',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: x-base64\r\n`,
    ),
    exePart(
      'cte-dup',
      'two Content-Transfer-Encoding headers, 7bit first',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'cte-unknown',
      'an unknown transfer encoding over base64 data',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: x-gzip64\r\n`,
    ),
    exePart(
      'cte-qp-comment',
      'quoted-printable (comment) carrying the exe',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: quoted-printable (qp)\r\n`,
      qp(PE_INVOICE_EXE),
    ),
    exePart(
      'cte-x-uuencode',
      'Content-Transfer-Encoding: x-uuencode (Thunderbird and Outlook decode it)',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: x-uuencode\r\n`,
      uuencode(PE_INVOICE_EXE, EXE_NAME),
    ),
    exePart(
      'uuencode-in-text',
      'a uuencode block inside a text/plain body: shown as an attachment',
      'Content-Type: text/plain\r\n',
      `Hello,\r\n\r\n${uuencode(PE_INVOICE_EXE, EXE_NAME)}\r\n`,
    ),
    exePart(
      'filename-dup',
      'two filename parameters: invoice.pdf then invoice.exe',
      `Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"; filename="${EXE_NAME}"\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'filename-2231',
      'filename and filename* disagree (RFC 2231 wins in clients)',
      `Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"; filename*=utf-8''${EXE_NAME}\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'filename-2047',
      'RFC 2047 encoded filename',
      `Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="=?utf-8?B?${Buffer.from(EXE_NAME).toString('base64')}?="\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'cd-dup',
      'two Content-Disposition headers: inline then attachment',
      `Content-Type: text/plain\r\nContent-Disposition: inline\r\nContent-Disposition: attachment; filename="${EXE_NAME}"\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'part-ct-dup',
      'a part with two Content-Type headers: text/plain then the exe',
      `Content-Type: text/plain\r\nContent-Type: application/x-msdownload; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: base64\r\n`,
    ),
    exePart(
      'part-headers-run-in',
      'part headers not followed by a blank line',
      `Content-Type: application/octet-stream; name="${EXE_NAME}"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="${EXE_NAME}"`,
    ),
    exePart(
      'part-text-run-in',
      'text/plain part with base64 body and no blank line',
      `Content-Type: text/plain\r\nContent-Transfer-Encoding: base64`,
    ),
    exePart(
      'part-no-name',
      'unnamed, declared image/png, base64 exe',
      'Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n',
    ),
  ];
  // Embedded message/rfc822 in base64 with the exe inside.
  const inner = `${HEAD('inner')}Content-Type: multipart/mixed; boundary="inner-${B}"\r\n\r\n${TEXT_PART.replace(B, `inner-${B}`)}${EXE_PART('', EXE_B64, `inner-${B}`)}--inner-${B}--\r\n`;
  const innerB64 = b64(Buffer.from(inner, 'latin1'));
  s.push(
    exePart(
      'rfc822-base64',
      'a forwarded message (message/rfc822) in base64 with the exe inside',
      'Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n',
      innerB64,
    ),
  );
  // Nested multipart with a comment in its type.
  const nested =
    `${HEAD('nested-comment')}Content-Type: multipart/mixed; boundary="${B}"\r\n\r\n${TEXT_PART}` +
    `--${B}\r\nContent-Type: multipart/alternative(x); boundary="n-${B}"\r\n\r\n` +
    `${EXE_PART('', EXE_B64, `n-${B}`)}--n-${B}--\r\n--${B}--\r\n`;
  s.push({
    name: 'nested-ct-comment',
    what: 'a nested multipart with a comment in its type',
    raw: Buffer.from(nested, 'latin1'),
    payload: EXE_B64,
  });
  // Bare LF line ends throughout, and a missing close delimiter.
  const lf = topLevel('lf-only', 'bare LF line ends', `Content-Type: multipart/mixed(c); boundary="${B}"`);
  s.push({
    ...lf,
    raw: Buffer.from(lf.raw.toString('latin1').replace(/\r\n/g, '\n'), 'latin1'),
    payload: EXE_B64.replace(/\r\n/g, '\n'),
  });
  const open = topLevel('no-close', 'missing closing delimiter', `Content-Type: multipart/mixed junk; boundary="${B}"`);
  s.push({ ...open, raw: Buffer.from(open.raw.toString('latin1').replace(`--${B}--\r\n`, ''), 'latin1') });
  // The first delimiter is a close: by RFC 2046 the parts are an epilogue, but postal-mime, mailparser and mail
  // clients keep splitting at the later delimiter lines and show the attachment (found by the property test).
  const early = topLevel(
    'close-first',
    'close delimiter before the parts',
    `Content-Type: multipart/mixed; boundary="${B}"`,
  );
  s.push({ ...early, raw: Buffer.from(early.raw.toString('latin1').replace(`--${B}\r\n`, `--${B}--\r\n`), 'latin1') });
  return s;
}

/** The shapes (built once). */
export const MIME_CONFUSION_SHAPES: readonly ConfusionShape[] = build();

/**
 * True when `raw` still carries the shape's executable: the first 60 characters of the encoded payload, compared
 * with line breaks removed on both sides.
 */
export function carriesPayload(raw: Buffer, shape: ConfusionShape): boolean {
  const flat = (s: string) => s.replace(/\r?\n/g, '');
  return flat(raw.toString('latin1')).includes(flat(shape.payload).slice(0, 60));
}
