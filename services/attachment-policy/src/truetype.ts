import { fileTypeFromBuffer, supportedExtensions, supportedMimeTypes } from 'file-type';

/**
 * True type from content. Magic bytes via `file-type` (v21, pure JS, Node 20); content without magic is
 * `text` when it looks like text and `unknown` otherwise; zero bytes are `empty`. Scripts (.js, .vbs, .bat, .ps1) are text: rules
 * must use extensions for those, which the default policy does.
 */
export interface TrueType {
  /** file-type extension (`pdf`, `exe`, `zip`), or `text` / `unknown` / `empty`. */
  readonly ext: string;
  readonly mime: string;
}

export const TEXT: TrueType = { ext: 'text', mime: 'text/plain' };
export const UNKNOWN: TrueType = { ext: 'unknown', mime: 'application/octet-stream' };
/** A zero-byte file: harmless whatever its name claims. */
export const EMPTY: TrueType = { ext: 'empty', mime: 'application/x-empty' };

export async function detectTrueType(content: Uint8Array): Promise<TrueType> {
  if (content.length === 0) return EMPTY;
  let ft;
  try {
    ft = await fileTypeFromBuffer(content);
  } catch {
    ft = undefined; // a truncated container confused the detector: judge it as having no known magic
  }
  if (ft) return { ext: ft.ext, mime: ft.mime };
  return looksLikeText(content) ? TEXT : UNKNOWN;
}

/** No NUL bytes and almost no control characters in the first 8 KiB (UTF-16 with a BOM counts as text). */
export function looksLikeText(b: Uint8Array): boolean {
  if ((b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff)) return true;
  const n = Math.min(b.length, 8192);
  let odd = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 0) return false;
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b) || c === 0x7f) odd++;
  }
  return odd * 100 <= n;
}

/** Extensions known to file-type, plus common document names: a decoy double extension starts with one. */
export const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  ...supportedExtensions,
  ...['jpeg', 'tiff', 'txt', 'doc', 'xls', 'ppt', 'csv', 'htm', 'html', 'mpeg', 'wma', 'wmv', 'eml', 'msg'],
]);

const EXT_ALIAS: Record<string, string> = { jpeg: 'jpg', jpe: 'jpg', jfif: 'jpg', tiff: 'tif', mpeg: 'mpg' };
/** Detectable, but too generic or too weakly detected to prove a lie (`.dat`, XML without a declaration). */
const WEAK_EXTS = new Set(['dat', 'xml', 'ics', 'vcf', 'vtt', 'reg', 'mts', 'ps', 'eps', 'sav', 'z', 'rm', 'mie']);
const WEAK_MIMES = new Set([
  'application/xml',
  'text/calendar',
  'text/vcard',
  'text/vtt',
  'application/postscript',
  'application/eps',
  'application/x-ms-regedit',
]);
/** Names that promise plain text: binary content under them is a lie even though text has no magic. */
const TEXT_EXTS = new Set(['txt', 'csv', 'log', 'htm', 'html']);
const ZIP_BENIGN = new Set([
  'zip',
  'docx',
  'xlsx',
  'pptx',
  'ppsx',
  'potx',
  'xltx',
  'dotx',
  'odt',
  'ods',
  'odp',
  'odg',
  'ott',
  'ots',
  'otp',
  'otg',
  'epub',
  '3mf',
  'vsdx',
]);
const ZIP_ANY = new Set([...ZIP_BENIGN, 'docm', 'xlsm', 'pptm', 'dotm', 'xltm', 'potm', 'ppsm', 'jar', 'apk', 'xpi']);
const IMAGE_EXTS = new Set(['jpg', 'png', 'gif', 'bmp', 'webp', 'tif', 'heic', 'avif', 'ico', 'jxl', 'apng']);
/** Formats whose files always start with their magic: no magic at all under such a claim is a lie. */
const STRONG_EXTS = new Set([
  'pdf',
  'png',
  'jpg',
  'gif',
  'bmp',
  'webp',
  'tif',
  'zip',
  'docx',
  'xlsx',
  'pptx',
  'odt',
  'ods',
  'odp',
  'gz',
  'bz2',
  '7z',
  'rar',
  'xz',
  'cab',
  'exe',
  'elf',
  'rtf',
  'psd',
]);
const STRONG_MIMES = new Set([
  'application/pdf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/bmp',
  'image/webp',
  'image/tiff',
  'application/zip',
  'application/gzip',
  'application/x-7z-compressed',
  'application/x-rar-compressed',
  'application/x-msdownload',
  'application/rtf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
]);

const alias = (e: string) => EXT_ALIAS[e] ?? e;
const isMedia = (mime: string) => /^(image|audio|video)\//.test(mime);
const zipMime = (m: string) =>
  m === 'application/zip' || m.includes('openxmlformats') || m.includes('opendocument') || m === 'application/epub+zip';

export interface Mismatch {
  /** What was claimed: `extension pdf` or `declared application/pdf`. */
  readonly claim: string;
}

/**
 * Does the name or the declared type claim something the content is not? Only claims that can be checked
 * count: a type file-type can detect (or a plain-text name). Harmless confusions are tolerated: one image
 * format for another, one audio/video container for another, a benign zip-based document for another.
 */
export function findMismatch(
  tt: TrueType,
  ext: string | undefined,
  declared: string | undefined,
): Mismatch | undefined {
  if (tt.ext === 'empty') return undefined;
  const detected = tt.ext !== 'text' && tt.ext !== 'unknown';
  if (ext) {
    const e = alias(ext);
    if (detected) {
      if (TEXT_EXTS.has(e)) return { claim: `extension ${ext}` };
      if ((supportedExtensions.has(e) || IMAGE_EXTS.has(e)) && !WEAK_EXTS.has(e) && !extCompatible(e, tt)) {
        return { claim: `extension ${ext}` };
      }
    } else if (STRONG_EXTS.has(e)) {
      return { claim: `extension ${ext}` };
    }
  }
  if (declared && declared !== 'application/octet-stream') {
    if (detected) {
      if (supportedMimeTypes.has(declared) && !WEAK_MIMES.has(declared) && !mimeCompatible(declared, tt)) {
        return { claim: `declared ${declared}` };
      }
    } else if (STRONG_MIMES.has(declared)) {
      return { claim: `declared ${declared}` };
    }
  }
  return undefined;
}

function extCompatible(e: string, tt: TrueType): boolean {
  const t = alias(tt.ext);
  if (e === t) return true;
  if (t === 'tar.gz' && e === 'gz') return true;
  if (IMAGE_EXTS.has(e) && tt.mime.startsWith('image/')) return true;
  if (ZIP_BENIGN.has(e) && ZIP_BENIGN.has(t)) return true;
  if (e === 'zip' && ZIP_ANY.has(t)) return true;
  return false;
}

function mimeCompatible(c: string, tt: TrueType): boolean {
  if (c === tt.mime) return true;
  if (isMedia(c) && isMedia(tt.mime) && c.split('/')[0] === tt.mime.split('/')[0]) return true;
  if (c.startsWith('audio/') && tt.mime.startsWith('video/')) return true; // mp4/ogg containers
  if (zipMime(c) && (c === 'application/zip' ? ZIP_ANY : ZIP_BENIGN).has(tt.ext)) return true;
  return false;
}
