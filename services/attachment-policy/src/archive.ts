// One file (~340 lines): zip, gzip and tar walkers share one budget (entries, bytes, ratio, depth) that must be
// charged in one place so a nested archive cannot escape the limits.
import * as zlib from 'node:zlib';
import { gunzipSync, inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import { detectTrueType, type TrueType } from './truetype.js';

/**
 * Looks inside archives so the policy can judge the files an archive carries (an exe in a zip in a zip).
 *
 *  - zip: the central directory is read with yauzl (maintained, handles zip64, rejects unsafe names); limits are
 *    checked on the central directory's declared sizes BEFORE anything is inflated; each entry is then inflated
 *    with node:zlib under a hard output cap (`maxOutputLength`) equal to its declared size, so a lying header
 *    cannot make us inflate more than the limits allow.
 *  - gzip (node:zlib, capped by the remaining byte budget) and tar (the 512-byte header parser below).
 *    gzip is a compression layer over one stream, not an archive level: `x.tar.gz` is one level.
 *  - 7z, rar and others have no maintained pure-JS reader: they are judged as files by the rules (the default
 *    allow-list does not list them).
 *
 * The walk only gathers facts (inner files with their true types, limit/encryption/read problems); the policy
 * decides what they mean.
 */

export interface ArchiveLimits {
  readonly maxDepth: number;
  readonly maxEntries: number;
  readonly maxTotalBytes: number;
  readonly maxRatio: number;
}

export interface InnerFile {
  /** Path through the archives: `outer.zip/inner.zip/evil.exe`. */
  readonly path: string;
  /** The entry's own name (last path segment), for extension rules. */
  readonly name: string;
  readonly size: number;
  readonly trueType: TrueType;
  /** 1 = directly inside the attachment. */
  readonly depth: number;
}

export type ArchiveIssueKind = 'limits' | 'encrypted' | 'unreadable';

export interface ArchiveIssue {
  readonly kind: ArchiveIssueKind;
  /** The archive or entry concerned. */
  readonly path: string;
  readonly detail: string;
}

export interface ArchiveReport {
  readonly files: InnerFile[];
  readonly issues: ArchiveIssue[];
  readonly entries: number;
  readonly totalBytes: number;
}

/** Ratios are only judged on entries at least this large: a 10 KiB file of zeros is not a bomb. */
export const RATIO_FLOOR_BYTES = 1024 * 1024;

export function isArchiveType(tt: TrueType): boolean {
  return tt.ext === 'zip' || tt.ext === 'gz' || tt.ext === 'tar.gz' || tt.ext === 'tar';
}

let CRC_TABLE: Int32Array | undefined;
/** CRC-32 of zip entries: node:zlib's when the runtime has it (Node ≥ 20.15), else a table loop. */
function crc32(b: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(b) >>> 0;
  if (!CRC_TABLE) {
    CRC_TABLE = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

class Stop extends Error {}

interface Walk {
  readonly limits: ArchiveLimits;
  entries: number;
  totalBytes: number;
  readonly files: InnerFile[];
  readonly issues: ArchiveIssue[];
}

/** Walks an archive attachment (its true type must satisfy isArchiveType). Never throws for bad content. */
export async function inspectArchive(
  content: Buffer,
  tt: TrueType,
  name: string,
  limits: ArchiveLimits,
): Promise<ArchiveReport> {
  const w: Walk = { limits, entries: 0, totalBytes: 0, files: [], issues: [] };
  try {
    await walk(w, content, tt, name, 1);
  } catch (err) {
    if (!(err instanceof Stop)) {
      w.issues.push({ kind: 'unreadable', path: name, detail: (err as Error).message });
    }
  }
  return { files: w.files, issues: w.issues, entries: w.entries, totalBytes: w.totalBytes };
}

/** Records a limit violation and stops the walk (nothing more of this attachment is opened). */
function limit(w: Walk, path: string, detail: string): never {
  w.issues.push({ kind: 'limits', path, detail });
  throw new Stop(detail);
}

function countEntries(w: Walk, n: number, path: string): void {
  w.entries += n;
  if (w.entries > w.limits.maxEntries) limit(w, path, `more than ${w.limits.maxEntries} archive entries`);
}

function reserveBytes(w: Walk, n: number, path: string): void {
  if (w.totalBytes + n > w.limits.maxTotalBytes) {
    limit(w, path, `more than ${w.limits.maxTotalBytes} uncompressed bytes`);
  }
}

function checkRatio(w: Walk, uncompressed: number, compressed: number, path: string): void {
  if (uncompressed >= RATIO_FLOOR_BYTES && uncompressed > w.limits.maxRatio * Math.max(1, compressed)) {
    limit(w, path, `compression ratio ${Math.round(uncompressed / Math.max(1, compressed))} over ${w.limits.maxRatio}`);
  }
}

/** `content` is a container at nesting `level` (1 = the attachment). Its files are at depth `level`. */
async function walk(w: Walk, content: Buffer, tt: TrueType, path: string, level: number): Promise<void> {
  if (tt.ext === 'gz' || tt.ext === 'tar.gz') return walkGzip(w, content, path, level);
  if (level > w.limits.maxDepth) limit(w, path, `archives nested deeper than ${w.limits.maxDepth}`);
  if (tt.ext === 'zip') return walkZip(w, content, path, level);
  if (tt.ext === 'tar') return walkTar(w, content, path, level);
}

/** A file found inside a container: record it, and open it too if it is an archive. */
async function found(w: Walk, name: string, data: Buffer, path: string, level: number): Promise<void> {
  const trueType = await detectTrueType(data);
  w.files.push({ path, name, size: data.length, trueType, depth: level });
  if (isArchiveType(trueType)) await walk(w, data, trueType, path, level + 1);
}

async function walkGzip(w: Walk, content: Buffer, path: string, level: number): Promise<void> {
  countEntries(w, 1, path);
  // ISIZE (last 4 bytes) is the declared size mod 2^32: a cheap pre-check; the cap below is the real guard.
  const declared = content.length >= 18 ? content.readUInt32LE(content.length - 4) : 0;
  reserveBytes(w, declared, path);
  const room = w.limits.maxTotalBytes - w.totalBytes;
  let out: Buffer;
  try {
    out = gunzipSync(content, { maxOutputLength: Math.max(1, room + 1) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      limit(w, path, `more than ${w.limits.maxTotalBytes} uncompressed bytes`);
    }
    w.issues.push({ kind: 'unreadable', path, detail: `gzip: ${(err as Error).message}` });
    return;
  }
  reserveBytes(w, out.length, path);
  w.totalBytes += out.length;
  checkRatio(w, out.length, content.length, path);
  const inner = path.replace(/\.(t?gz|gzip)$/i, (m) => (m.toLowerCase() === '.tgz' ? '.tar' : '')) || 'data';
  const innerName = inner.slice(inner.lastIndexOf('/') + 1);
  const innerPath = inner === path ? `${path}/data` : inner;
  // The decompressed stream is the same level as the gzip (compression, not nesting).
  const trueType = await detectTrueType(out);
  if (trueType.ext === 'tar') return walk(w, out, trueType, innerPath, level);
  w.files.push({ path: innerPath, name: innerName, size: out.length, trueType, depth: level });
  if (isArchiveType(trueType)) await walk(w, out, trueType, innerPath, level + 1);
}

interface ZipEntryInfo {
  readonly name: string;
  readonly flags: number;
  readonly method: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  readonly crc32: number;
  readonly isDirectory: boolean;
}

/** The central directory, via yauzl (no entry data is read here). */
function listZip(content: Buffer, maxEntries: number): Promise<{ entries: ZipEntryInfo[]; declaredCount: number }> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(
      content,
      { lazyEntries: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false, autoClose: true },
      (err, zip) => {
        if (err || !zip) return reject(err ?? new Error('unreadable zip'));
        const entries: ZipEntryInfo[] = [];
        const declaredCount = zip.entryCount;
        // Do not even list a directory that declares more entries than allowed.
        if (declaredCount > maxEntries) {
          zip.close();
          return resolve({ entries, declaredCount });
        }
        zip.on('error', (e: Error) => reject(e));
        zip.on('end', () => resolve({ entries, declaredCount }));
        zip.on('entry', (e: yauzl.Entry) => {
          entries.push({
            name: e.fileName,
            flags: e.generalPurposeBitFlag,
            method: e.compressionMethod,
            compressedSize: e.compressedSize,
            uncompressedSize: e.uncompressedSize,
            localHeaderOffset: e.relativeOffsetOfLocalHeader,
            crc32: e.crc32 >>> 0,
            isDirectory: e.fileName.endsWith('/'),
          });
          zip.readEntry();
        });
        zip.readEntry();
      },
    );
  });
}

async function walkZip(w: Walk, content: Buffer, path: string, level: number): Promise<void> {
  let listing;
  try {
    listing = await listZip(content, w.limits.maxEntries - w.entries);
  } catch (err) {
    w.issues.push({ kind: 'unreadable', path, detail: `zip: ${(err as Error).message}` });
    return;
  }
  countEntries(w, listing.declaredCount, path);
  const files = listing.entries.filter((e) => !e.isDirectory);
  // Limits on the declared sizes first: nothing is inflated if the directory already says "bomb".
  const declaredTotal = files.reduce((n, e) => n + e.uncompressedSize, 0);
  reserveBytes(w, declaredTotal, path);
  checkRatio(w, declaredTotal, content.length, path);
  for (const e of files) checkRatio(w, e.uncompressedSize, e.compressedSize, `${path}/${e.name}`);
  for (const e of files) {
    const entryPath = `${path}/${e.name}`;
    if (e.flags & 0x1) {
      w.issues.push({ kind: 'encrypted', path: entryPath, detail: 'encrypted entry' });
      continue;
    }
    let data: Buffer;
    try {
      data = readZipEntry(content, e);
    } catch (err) {
      if (err instanceof LyingSize) limit(w, entryPath, err.message);
      w.issues.push({ kind: 'unreadable', path: entryPath, detail: (err as Error).message });
      continue;
    }
    w.totalBytes += data.length;
    const name = e.name.slice(e.name.lastIndexOf('/') + 1);
    await found(w, name, data, entryPath, level);
  }
}

class LyingSize extends Error {}

/** Inflates one entry, never producing more than its declared size (+1 byte to notice a lie). */
function readZipEntry(content: Buffer, e: ZipEntryInfo): Buffer {
  const o = e.localHeaderOffset;
  if (o + 30 > content.length || content.readUInt32LE(o) !== 0x04034b50) throw new Error('bad local file header');
  const dataStart = o + 30 + content.readUInt16LE(o + 26) + content.readUInt16LE(o + 28);
  const dataEnd = dataStart + e.compressedSize;
  if (dataEnd > content.length) throw new Error('entry data beyond the end of the archive');
  const raw = content.subarray(dataStart, dataEnd);
  if (e.method !== 0 && e.method !== 8) throw new Error(`unsupported compression method ${e.method}`);
  const out = e.method === 0 ? raw : inflateCapped(raw, e.uncompressedSize);
  // A corrupted or doctored entry must not be judged on whatever garbage inflated from it.
  if (crc32(out) !== e.crc32) throw new Error('entry CRC-32 mismatch');
  return out;
}

function inflateCapped(raw: Buffer, declared: number): Buffer {
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: declared + 1 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new LyingSize(`entry inflates beyond its declared ${declared} bytes`);
    }
    throw new Error(`inflate: ${(err as Error).message}`);
  }
  if (out.length > declared) throw new LyingSize(`entry inflates beyond its declared ${declared} bytes`);
  return out;
}

function tarString(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.toString('utf8', 0, nul < 0 ? s.length : nul);
}

function tarSize(b: Buffer, off: number): number {
  if (b[off]! & 0x80) {
    // GNU base-256 size
    let n = 0;
    for (let i = off + 1; i < off + 12; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = tarString(b, off, 12).trim();
  const n = s ? parseInt(s, 8) : 0;
  if (!Number.isFinite(n) || n < 0) throw new Error('bad tar entry size');
  return n;
}

async function walkTar(w: Walk, content: Buffer, path: string, level: number): Promise<void> {
  let pos = 0;
  let longName: string | undefined;
  while (pos + 512 <= content.length) {
    const h = content.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break; // end-of-archive block
    const size = tarSize(h, 124);
    const type = String.fromCharCode(h[156]!);
    const dataStart = pos + 512;
    const dataEnd = dataStart + size;
    if (dataEnd > content.length) {
      w.issues.push({ kind: 'unreadable', path, detail: 'tar entry beyond the end of the archive' });
      return;
    }
    pos = dataStart + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = tarString(content, dataStart, size); // GNU long name for the next entry
      continue;
    }
    if (type === 'x' || type === 'g') continue; // pax headers
    countEntries(w, 1, path);
    const prefix = h.toString('latin1', 257, 262) === 'ustar' ? tarString(h, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${tarString(h, 0, 100)}` : tarString(h, 0, 100));
    longName = undefined;
    if (type !== '0' && type !== '\0' && type !== '7') continue; // directories, links, devices carry no data
    reserveBytes(w, size, path);
    w.totalBytes += size;
    await found(
      w,
      name.slice(name.lastIndexOf('/') + 1),
      content.subarray(dataStart, dataEnd),
      `${path}/${name}`,
      level,
    );
  }
}
