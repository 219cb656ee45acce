import type { PipelineMessage } from '@mailgate/contracts';
import type { StageContext } from '@mailgate/bus';
import { createLogger } from '@mailgate/runtime';
import { testPipelineMessage, testStageContext } from '@mailgate/testkit';
import { zipSync, type Zippable } from 'fflate';
import { gzipSync } from 'node:zlib';
import { policyConfig, type AttachmentPolicyConfig } from '../src/index.js';

export const log = createLogger('attachment-policy-test', process.env['TEST_LOG_LEVEL'] ?? 'silent');

export const cfg = (doc: Parameters<typeof policyConfig>[0] = {}): AttachmentPolicyConfig => policyConfig(doc);

/** A pipeline message around these bytes (from a@sender.test to u@example.test). */
export const pipelineMessage = (raw: Buffer | string): PipelineMessage => testPipelineMessage(raw);

export const stageContext = (over: Partial<StageContext> = {}): StageContext =>
  testStageContext('attachment-policy', over);

// --- file contents with real magic bytes -------------------------------------------------------------------
export const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n' +
    'trailer << /Root 1 0 R >>\n%%EOF\n',
  'latin1',
);
/** A DOS/PE header prefix: what file-type recognises as a Windows executable. */
export const EXE = Buffer.concat([
  Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff', 'latin1'),
  Buffer.alloc(200, 0),
]);
export const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000100' +
    '05fe02fea70000000049454e44ae426082',
  'hex',
);
export const TEXT = Buffer.from('just some notes\r\nline two\r\n', 'utf8');

export const zip = (files: Zippable, level: 0 | 6 | 9 = 6): Buffer => Buffer.from(zipSync(files, { level }));
export const gzip = (b: Buffer): Buffer => gzipSync(b);

/** A ustar archive of the given files. */
export function tar(files: Record<string, Buffer>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of Object.entries(files)) {
    const h = Buffer.alloc(512, 0);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.write('0', 156, 'latin1');
    h.write('ustar\x0000', 257, 'latin1');
    h.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return Buffer.concat(blocks);
}

/** Sets the "encrypted" flag (general purpose bit 0) on every local and central header of a zip. */
export function markEncrypted(z: Buffer): Buffer {
  const b = Buffer.from(z);
  for (let i = 0; i + 4 <= b.length; i++) {
    const sig = b.readUInt32LE(i);
    if (sig === 0x04034b50) b.writeUInt16LE(b.readUInt16LE(i + 6) | 1, i + 6);
    else if (sig === 0x02014b50) b.writeUInt16LE(b.readUInt16LE(i + 8) | 1, i + 8);
  }
  return b;
}

/** Rewrites the declared uncompressed size of every entry (local + central), to make a zip that lies. */
export function lieAboutSizes(z: Buffer, size: number): Buffer {
  const b = Buffer.from(z);
  for (let i = 0; i + 4 <= b.length; i++) {
    const sig = b.readUInt32LE(i);
    if (sig === 0x04034b50) b.writeUInt32LE(size, i + 22);
    else if (sig === 0x02014b50) b.writeUInt32LE(size, i + 24);
  }
  return b;
}

// --- messages ----------------------------------------------------------------------------------------------
export interface Att {
  readonly content: Buffer;
  readonly filename?: string;
  readonly type?: string;
  /** Raw Content-Disposition / Content-Type parameter text, to test RFC 2231 / RFC 2047 names verbatim. */
  readonly dispositionParams?: string;
  readonly typeParams?: string;
  readonly encoding?: 'base64' | 'quoted-printable';
}

const HEAD = ['From: Alice <a@sender.test>', 'To: u@example.test', 'Subject: test', 'MIME-Version: 1.0'];

function b64(b: Buffer): string {
  return (b.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

export function attachmentPart(a: Att): string {
  const type = a.type ?? 'application/octet-stream';
  const tp = a.typeParams ?? (a.filename !== undefined ? `; name="${a.filename}"` : '');
  const dp = a.dispositionParams ?? (a.filename !== undefined ? `; filename="${a.filename}"` : '');
  return [
    `Content-Type: ${type}${tp}`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment${dp}`,
    '',
    b64(a.content),
  ].join('\r\n');
}

/** multipart/mixed: a text body then the attachments, CRLF line ends. */
export function message(atts: readonly Att[], opts: { boundary?: string; body?: string } = {}): Buffer {
  const bd = opts.boundary ?? 'mg-b1';
  const lines = [
    ...HEAD,
    `Content-Type: multipart/mixed; boundary="${bd}"`,
    '',
    'This is a multi-part message in MIME format.',
    `--${bd}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    opts.body ?? 'Please see the attachment.',
  ];
  for (const a of atts) lines.push(`--${bd}`, attachmentPart(a));
  lines.push(`--${bd}--`, '');
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

export function plainMessage(body: string): Buffer {
  return Buffer.from([...HEAD, 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n'), 'utf8');
}

/** Splits an mbox file on `From ` lines (the mboxrd/mboxo separator); returns the messages without it. */
export function splitMbox(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const text = b.toString('latin1');
  const re = /^From .*\r?\n/gm;
  const starts: { at: number; body: number }[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) starts.push({ at: m.index, body: m.index + m[0].length });
  starts.forEach((s, i) => out.push(b.subarray(s.body, i + 1 < starts.length ? starts[i + 1]!.at : b.length)));
  return out;
}
