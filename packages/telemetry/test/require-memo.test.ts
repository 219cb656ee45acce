// installResolveMemo: Module._resolveFilename gets the cache Node's own require has (require-memo.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { installResolveMemo } from '../src/require-memo.js';

type Resolve = (request: string, parent: unknown, isMain?: boolean, options?: unknown) => string;
const M = Module as unknown as { _resolveFilename: Resolve; _cache: Record<string, { exports: unknown } | undefined> };

test('a module already loaded resolves from the memo; a deleted cache entry or options resolve afresh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'resolve-memo-'));
  const original = M._resolveFilename;
  try {
    writeFileSync(join(dir, 'a.cjs'), "module.exports = () => require('./b.cjs');\n");
    writeFileSync(join(dir, 'b.cjs'), 'module.exports = { v: 1 };\n');
    // Count the resolutions that reach the resolver beneath the memo (what require-in-the-middle calls).
    let resolved = 0;
    M._resolveFilename = function (this: unknown, ...args: Parameters<Resolve>) {
      if (args[0] === './b.cjs') resolved++;
      return original.apply(this, args);
    };
    assert.equal(installResolveMemo(), true);
    assert.equal(installResolveMemo(), true, 'idempotent');
    const req = createRequire(join(dir, 'index.cjs'));
    const a = req('./a.cjs') as () => { v: number };
    const parent = M._cache[join(dir, 'a.cjs')];
    assert.ok(parent);
    assert.deepEqual(a(), { v: 1 });
    const asHook = () => M._resolveFilename('./b.cjs', parent);
    const before = resolved;
    for (let i = 0; i < 5; i++) assert.equal(asHook(), join(dir, 'b.cjs'));
    assert.ok(resolved - before <= 1, `resolved ${resolved - before} times, expected at most once`);

    // Gone from require.cache: resolved again, and require loads the new content.
    delete M._cache[join(dir, 'b.cjs')];
    writeFileSync(join(dir, 'b.cjs'), 'module.exports = { v: 2 };\n');
    const n = resolved;
    assert.equal(asHook(), join(dir, 'b.cjs'));
    assert.equal(resolved, n + 1);
    assert.deepEqual(a(), { v: 2 });

    // require.resolve with paths passes options: never memoised.
    const m = resolved;
    M._resolveFilename('./b.cjs', parent, false, { paths: [dir] });
    M._resolveFilename('./b.cjs', parent, false, { paths: [dir] });
    assert.equal(resolved, m + 2);
  } finally {
    M._resolveFilename = original;
    rmSync(dir, { recursive: true, force: true });
  }
});
