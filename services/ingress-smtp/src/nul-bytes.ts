/**
 * NUL octets in DATA. RFC 5321 §4.1.1.4 / RFC 5322 §2.1 do not allow them in a message, and a downstream parser
 * (C-string based MTAs, scanners, MIME libraries) may truncate at one and see a different message than the one
 * we checked. `ingress.nulBytes`: `reject` (default) answers 554 5.6.0; `strip` removes them before the bytes go
 * anywhere. Streaming: each chunk is scanned on its own (a NUL is one octet, no state spans chunks).
 */
export type NulPolicy = 'reject' | 'strip';

export class NulGuard {
  /** NUL octets seen so far. */
  count = 0;

  constructor(private readonly policy: NulPolicy) {}

  /** Returns the chunk to keep: unchanged (reject: only counted), or without its NULs (strip). */
  feed(chunk: Buffer): Buffer {
    let i = chunk.indexOf(0);
    if (i < 0) return chunk;
    if (this.policy === 'reject') {
      while (i >= 0) {
        this.count++;
        i = chunk.indexOf(0, i + 1);
      }
      return chunk;
    }
    const parts: Buffer[] = [];
    let start = 0;
    while (i >= 0) {
      this.count++;
      if (i > start) parts.push(chunk.subarray(start, i));
      start = i + 1;
      i = chunk.indexOf(0, start);
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    return Buffer.concat(parts);
  }

  /** The message must be refused (reject policy and at least one NUL). */
  get refuse(): boolean {
    return this.policy === 'reject' && this.count > 0;
  }
}
