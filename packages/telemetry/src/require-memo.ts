import Module from 'node:module';

/**
 * Auto-instrumentation (require-in-the-middle, installed when the SDK starts with any instrumentation) resolves
 * the file name of EVERY `require()` call with `Module._resolveFilename`, which has no cache of its own: each call
 * walks package scopes and stats files. Node's own `require` skips that for a module it has loaded already (its
 * relative-resolve cache in `Module._load`), but the hook runs first. Libraries that `require` lazily on a hot path
 * pay it per call: kafkajs requires the request and response modules of every produce, fetch, commit and heartbeat
 * inside the call (~15 µs per produce request under the hook, ~1 % of ingress CPU per message).
 *
 * The memo gives `_resolveFilename` the cache Node's `_load` has, with the same key (the requiring module's
 * directory and the request) and the same validity rule (only while the resolved module is still in
 * `require.cache`, so a deleted cache entry resolves afresh). Only plain calls are memoised: no `options`
 * (`require.resolve` with `paths`), not the main module.
 */
interface ModuleInternals {
  _resolveFilename(
    request: string,
    parent: { path?: string } | null | undefined,
    isMain?: boolean,
    options?: unknown,
  ): string;
  _cache: Record<string, unknown>;
}

const M = Module as unknown as ModuleInternals;
const MEMOISED = Symbol.for('mailgate.requireResolveMemo');
/** Distinct (directory, request) pairs remembered; a process loads a few thousand modules at most. */
const MAX_ENTRIES = 20_000;

/** Install the memo over the current `Module._resolveFilename` (idempotent). True when it is in place. */
export function installResolveMemo(): boolean {
  const current = M._resolveFilename as ModuleInternals['_resolveFilename'] & { [MEMOISED]?: true };
  if (typeof current !== 'function') return false;
  if (current[MEMOISED]) return true;
  const memo = new Map<string, string>();
  const memoised = function (
    this: unknown,
    request: string,
    parent: { path?: string } | null | undefined,
    isMain?: boolean,
    options?: unknown,
  ): string {
    if (isMain || options !== undefined || typeof request !== 'string' || typeof parent?.path !== 'string') {
      return current.call(this, request, parent, isMain, options);
    }
    const key = `${parent.path}\x00${request}`;
    const known = memo.get(key);
    if (known !== undefined && M._cache[known] !== undefined) return known;
    const filename = current.call(this, request, parent, isMain, options);
    if (memo.size >= MAX_ENTRIES) memo.clear();
    memo.set(key, filename);
    return filename;
  };
  Object.defineProperty(memoised, MEMOISED, { value: true });
  M._resolveFilename = memoised;
  return true;
}
