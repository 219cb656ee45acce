/**
 * SMTP smuggling defence for message content. smtp-server ends DATA only on <CRLF>.<CRLF>, but passes a bare
 * LF (or CR) inside the content through unchanged. A downstream server that also accepts <LF>.<LF> as the end
 * of data would then see a second, unchecked message. Content is therefore either refused (`reject`) or every
 * bare CR / bare LF is turned into CRLF (`normalize`) before the bytes go anywhere.
 *
 * Streaming: state carries over chunk boundaries (a CR at the end of one chunk may pair with an LF at the start
 * of the next).
 */
const CR = 0x0d;
const LF = 0x0a;

export class LineEndingGuard {
  bareLf = 0;
  bareCr = 0;
  private pendingCr = false;

  get clean(): boolean {
    return this.bareLf === 0 && this.bareCr === 0;
  }

  /** Count bare CR / LF in `chunk` (reject mode). */
  scan(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    if (this.pendingCr && n > 0) {
      if (chunk[0] !== LF) this.bareCr++;
      else i = 1; // the LF completes the CRLF begun in the previous chunk
      this.pendingCr = false;
    }
    for (;;) {
      // Fast path: jump between CR/LF bytes with indexOf instead of visiting every byte.
      const cr = chunk.indexOf(CR, i);
      const lf = chunk.indexOf(LF, i);
      if (cr < 0 && lf < 0) return;
      if (lf >= 0 && (cr < 0 || lf < cr)) {
        if (lf === 0 || chunk[lf - 1] !== CR) this.bareLf++;
        i = lf + 1;
        continue;
      }
      // CR
      if (cr === n - 1) {
        this.pendingCr = true;
        return;
      }
      if (chunk[cr + 1] !== LF) this.bareCr++;
      i = cr + 1;
    }
  }

  /** Return `chunk` with every bare CR / bare LF replaced by CRLF (normalize mode). */
  normalize(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let start = 0;
    let i = 0;
    const n = chunk.length;
    if (this.pendingCr && n > 0) {
      if (chunk[0] === LF) {
        // CR (already emitted) + LF: a proper CRLF.
        parts.push(chunk.subarray(0, 1));
        start = i = 1;
      } else {
        this.bareCr++;
        parts.push(Buffer.from([LF]));
      }
      this.pendingCr = false;
    }
    while (i < n) {
      const c = chunk[i]!;
      if (c === CR) {
        if (i === n - 1) {
          this.pendingCr = true;
          i++;
          break;
        }
        if (chunk[i + 1] === LF) {
          i += 2;
          continue;
        }
        this.bareCr++;
        parts.push(chunk.subarray(start, i + 1), Buffer.from([LF]));
        start = ++i;
      } else if (c === LF) {
        this.bareLf++;
        parts.push(chunk.subarray(start, i), Buffer.from([CR, LF]));
        start = ++i;
      } else {
        // Skip to the next CR or LF.
        const cr = chunk.indexOf(CR, i);
        const lf = chunk.indexOf(LF, i);
        const next = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
        i = next < 0 ? n : next;
      }
    }
    if (start === 0 && parts.length === 0) return chunk;
    parts.push(chunk.subarray(start, n));
    return Buffer.concat(parts);
  }

  /** End of content: a CR left pending is bare. Returns bytes to append in normalize mode. */
  finish(): Buffer {
    if (!this.pendingCr) return Buffer.alloc(0);
    this.pendingCr = false;
    this.bareCr++;
    return Buffer.from([LF]);
  }
}
