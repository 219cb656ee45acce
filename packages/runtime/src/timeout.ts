/**
 * `p`, or a rejection with ``${what} did not answer within ${ms} ms`` once `ms` have passed (the timer is cleared
 * when `p` settles, and never keeps the process alive). `p` itself is not cancelled: callers bound their wait on a
 * peer (Redis, a cache) that may be away, not the work.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
