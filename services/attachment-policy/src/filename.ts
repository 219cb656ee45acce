/**
 * File-name facts the rules match on. Names are normalised the way Windows treats them when saving/opening:
 * trailing dots and spaces are dropped (`invoice.exe. ` runs as invoice.exe), control and bidi-override
 * characters are removed (U+202E makes `gnp.exe` display as `exe.png`), and a path is reduced to its last segment.
 */

// C0/C1 controls, zero-width, bidi embedding/override/isolate marks.
// eslint-disable-next-line no-control-regex -- removing control characters is the point
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

export function normaliseName(name: string): string {
  let n = name.replace(INVISIBLE, '');
  const slash = Math.max(n.lastIndexOf('/'), n.lastIndexOf('\\'));
  if (slash >= 0) n = n.slice(slash + 1);
  return n.replace(/[. \t]+$/u, '');
}

/** An extension-like segment: 1–8 characters, letters/digits, at least one letter (so `v1.2.3` has none). */
const EXT = /^(?=.*[a-z])[a-z0-9_-]{1,8}$/;

/** Extensions of a name, last one last: `Report.PDF.exe` → ['pdf', 'exe']. */
export function extensionsOf(normalised: string): string[] {
  const segs = normalised.toLowerCase().split('.');
  segs.shift(); // the base name (a leading-dot name like `.bashrc` has an empty base)
  const out: string[] = [];
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i]!.trim();
    if (!EXT.test(s)) break;
    out.unshift(s);
  }
  return out;
}

/** Suffixes that legitimately follow another extension (`logs.tar.gz`, `photo.jpg.zip`). */
const CONTAINER_SUFFIXES = new Set([
  'gz',
  'tgz',
  'bz2',
  'xz',
  'zst',
  'z',
  'lz',
  'lz4',
  'br',
  'zip',
  '7z',
  'rar',
  'tar',
]);

/**
 * A decoy double extension: the next-to-last extension is a known file type (`pdf`, `jpg`, `docx`, …) and the
 * last one is a different type that is not a compression/archive suffix: `invoice.pdf.exe`, `photo.jpg.scr`.
 * `report.final.pdf` (unknown `final`) and `logs.tar.gz` are not.
 */
export function hasDecoyDoubleExtension(exts: readonly string[], known: ReadonlySet<string>): boolean {
  if (exts.length < 2) return false;
  const last = exts[exts.length - 1]!;
  const prev = exts[exts.length - 2]!;
  if (prev === last || CONTAINER_SUFFIXES.has(last)) return false;
  return known.has(prev);
}
