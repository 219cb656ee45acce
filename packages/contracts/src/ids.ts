import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U.

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
  const rnd = randomBytes(16);
  let r = '';
  for (let i = 0; i < 16; i++) r += ALPHABET[rnd[i]! % 32];
  return time + r;
}
