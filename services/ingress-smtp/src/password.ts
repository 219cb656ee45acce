import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes for SMTP AUTH users: scrypt (node:crypto, no native addon), stored as
 *   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt base64>$<key base64>
 * `mailgate hash-password` (CLI) prints one of these; the config holds only hashes, never passwords.
 */

export interface HashOptions {
  /** log2 of the CPU/memory cost N. Default 15 (N=32768, 32 MiB, ~50-100 ms). */
  logN?: number;
  r?: number;
  p?: number;
}

const KEY_LEN = 32;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFC'), salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

const maxmem = (N: number, r: number) => 128 * N * r * 2 + 1024 * 1024;

export async function hashPassword(password: string, opts: HashOptions = {}): Promise<string> {
  const logN = opts.logN ?? 15;
  const r = opts.r ?? 8;
  const p = opts.p ?? 1;
  if (!Number.isInteger(logN) || logN < 10 || logN > 20) throw new RangeError('logN must be an integer in 10..20');
  const N = 2 ** logN;
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_LEN, { N, r, p, maxmem: maxmem(N, r) });
  return `$scrypt$ln=${logN},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

export function isPasswordHash(s: string): boolean {
  const m = HASH_RE.exec(s);
  return !!m && Number(m[1]) >= 10 && Number(m[1]) <= 20;
}

/** Constant-time check; false (never a throw) for a malformed hash. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const m = HASH_RE.exec(encoded);
  if (!m) return false;
  const logN = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (logN < 10 || logN > 20 || r < 1 || p < 1) return false;
  const salt = Buffer.from(m[4]!, 'base64');
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length < 16) return false;
  const N = 2 ** logN;
  try {
    const key = await scrypt(password, salt, expected.length, { N, r, p, maxmem: maxmem(N, r) });
    return timingSafeEqual(key, expected);
  } catch {
    return false;
  }
}
