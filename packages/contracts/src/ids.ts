import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U.

/**
 * Random bytes for ids, drawn from the CSPRNG 4 KiB at a time: one `randomBytes(16)` per message was a Buffer
 * allocation and a call into OpenSSL on ingress's accept path, 256 ids now share one. The bytes are still
 * cryptographically random and each is used once; ids need uniqueness, not secrecy.
 */
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

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
  if (poolOffset + 16 > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  let r = '';
  for (let i = poolOffset; i < poolOffset + 16; i++) r += ALPHABET[POOL[i]! % 32];
  poolOffset += 16;
  return time + r;
}
