/**
 * The clamd wire protocol, the part the gateway uses (see clamd(8) "COMMANDS"):
 *
 *   zPING\0     → "PONG\0"
 *   zVERSION\0  → "ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025\0"
 *   zINSTREAM\0 <len:uint32 BE><bytes> ... <0:uint32 BE>
 *               → "stream: OK\0" | "stream: <signature> FOUND\0" | "stream: <reason> ERROR\0"
 *               | "INSTREAM size limit exceeded. ERROR\0" (then clamd closes the connection)
 *
 * The `z` prefix makes clamd terminate each reply with NUL instead of newline, which is unambiguous even when
 * a signature name or error text is odd. Health PING/VERSION use one connection per command; scans go over
 * IDSESSION connections (session.ts: replies "<n>: stream: OK\0"; a scan beyond the pool's sessions waits for one),
 * or one connection each with sessionsPerEndpoint 0. A connection that carried anything but a clean verdict is
 * never reused.
 */

export const CMD_PING = Buffer.from('zPING\0', 'latin1');
export const CMD_VERSION = Buffer.from('zVERSION\0', 'latin1');
export const CMD_INSTREAM = Buffer.from('zINSTREAM\0', 'latin1');
/** A zero-length chunk ends the stream. */
export const STREAM_END = Buffer.alloc(4);

/** The length prefixes + chunk views of `data` (no copy of the data itself). */
export function instreamFrames(data: Buffer, chunkBytes: number): Buffer[] {
  const frames: Buffer[] = [CMD_INSTREAM];
  for (let off = 0; off < data.length; off += chunkBytes) {
    const part = data.subarray(off, Math.min(off + chunkBytes, data.length));
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(part.length, 0);
    frames.push(len, part);
  }
  frames.push(STREAM_END);
  return frames;
}

/** What one INSTREAM reply means. */
export type InstreamReply =
  | { readonly kind: 'clean' }
  | { readonly kind: 'found'; readonly signatures: readonly string[] }
  | { readonly kind: 'size-limit' }
  | { readonly kind: 'error'; readonly message: string };

/**
 * Parse clamd's INSTREAM answer. With `AllMatchScans yes` clamd sends one "stream: X FOUND" per match, so the
 * reply may hold several NUL/newline separated lines; FOUND wins over OK, and any line we do not understand
 * is an error (never a silent "clean").
 */
export function parseInstreamReply(text: string): InstreamReply {
  const lines = text
    .split(/[\0\n]/)
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length === 0) return { kind: 'error', message: 'empty reply' };
  const signatures: string[] = [];
  let clean = false;
  for (const line of lines) {
    if (/size limit exceeded/i.test(line)) return { kind: 'size-limit' };
    const m = /^(?:stream|[^:]*):\s*(.*)$/.exec(line);
    const body = (m ? m[1]! : line).trim();
    if (body === 'OK') clean = true;
    else if (body.endsWith(' FOUND')) signatures.push(body.slice(0, -' FOUND'.length).trim());
    else if (body.endsWith(' ERROR') || body === 'ERROR') return { kind: 'error', message: line };
    else return { kind: 'error', message: `unexpected reply: ${JSON.stringify(line.slice(0, 200))}` };
  }
  if (signatures.length > 0) return { kind: 'found', signatures: [...new Set(signatures)] };
  return clean ? { kind: 'clean' } : { kind: 'error', message: 'no verdict in reply' };
}

/** Engine and signature-database version from a VERSION reply ("ClamAV 1.4.6/27470/Thu Nov 27 …"). */
export interface ClamdVersion {
  /** The reply as clamd sent it. */
  readonly raw: string;
  /** "ClamAV 1.4.6" */
  readonly engine: string;
  /** Database version number ("27470"), when clamd reports one. */
  readonly database?: string;
  /** Database build date as clamd prints it. */
  readonly databaseDate?: string;
}

export function parseVersion(text: string): ClamdVersion {
  const raw = text.replace(/\0+$/, '').trim();
  const [engine = raw, database, ...date] = raw.split('/');
  return {
    raw,
    engine: engine.trim(),
    ...(database ? { database: database.trim() } : {}),
    ...(date.length > 0 ? { databaseDate: date.join('/').trim() } : {}),
  };
}

/** clamd size notation ("25M", "512K", "1G", plain bytes) → bytes. */
export function parseClamdSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+)\s*([kKmMgG]?)[bB]?\s*$/.exec(v);
  if (!m) throw new Error(`not a size: ${JSON.stringify(v)} (use bytes or a K/M/G suffix like clamd.conf)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}
