import Module, { createRequire } from 'node:module';
import { crc32c } from '@node-rs/crc32';

/**
 * kafkajs checksums every produced record batch with a byte-at-a-time JavaScript CRC-32C (≈ 310 MB/s here:
 * 0.33 ms per 100 KiB message, paid on every produce of every stage). This swaps in @node-rs/crc32's native
 * CRC-32C (same checksum, ≈ 4× faster; docs/benchmarks.md) by pre-loading kafkajs' checksum module in the CommonJS
 * cache before kafkajs first requires it (it does so lazily, on the first produce).
 *
 * The module path is kafkajs-internal, so the swap checks itself: `kafkaCrc32cIsNative()` is asserted by a test
 * (packages/bus/test/crc32c.test.ts) and the broker verifies the checksum of every batch it is sent, so a wrong
 * checksum can never pass silently. If a kafkajs upgrade moves the module, the swap is skipped (kafkajs keeps its
 * own, slower CRC) and `installNativeCrc32c` returns false: the service logs a warning.
 */
const require = createRequire(import.meta.url);
const CRC_MODULE = 'kafkajs/src/protocol/recordBatch/crc32C/index.js';
const nativeCrc32c = (buffer: Buffer): number => crc32c(buffer) >>> 0;

function resolveCrcModule(): string | undefined {
  try {
    return require.resolve(CRC_MODULE);
  } catch {
    return undefined;
  }
}

/** Installs the native CRC-32C for kafkajs; true when kafkajs will use it (idempotent). */
export function installNativeCrc32c(): boolean {
  const path = resolveCrcModule();
  if (!path) return false;
  const cached = require.cache[path];
  if (cached) return cached.exports === nativeCrc32c;
  const m = new Module(path);
  m.filename = path;
  m.loaded = true;
  m.exports = nativeCrc32c;
  require.cache[path] = m;
  return true;
}

/** What kafkajs' record-batch encoder will call for its checksum is the native one. */
export function kafkaCrc32cIsNative(): boolean {
  const path = resolveCrcModule();
  return !!path && require(path) === nativeCrc32c;
}
