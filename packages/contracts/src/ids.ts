import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U.

/**
 * Random bytes for ids, drawn from the CSPRNG 4 KiB at a time: one `randomBytes(16)` per message was a Buffer
 * allocation and a call into OpenSSL on ingress's accept path, 256 ids now share one. The bytes are still
 * cryptographically random and each is used once; ids need uniqueness, not secrecy.
 */
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

/** `n` random digits of a 32-character `alphabet` (5 random bits each), from the pooled CSPRNG bytes. */
export function randomDigits(n: number, alphabet: string): string {
  if (alphabet.length !== 32) throw new Error('randomDigits: a 32-character alphabet');
  if (n > POOL.length) throw new Error(`randomDigits: at most ${POOL.length} digits`);
  if (poolOffset + n > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  let r = '';
  for (let i = poolOffset; i < poolOffset + n; i++) r += alphabet[POOL[i]! & 31];
  poolOffset += n;
  return r;
}

/**
 * A gateway message id: 10 chars of millisecond time + 16 chars of randomness (ULID layout), so ids sort by
 * acceptance time and are safe in SMTP replies, headers, Redis keys and file names.
 */
export function newMessageId(now = Date.now()): string {
  let t = now;
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time + randomDigits(16, ALPHABET);
}
