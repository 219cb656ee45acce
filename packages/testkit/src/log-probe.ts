import { createLogger, type Logger } from '@mailgate/runtime';

/**
 * A logger for a service under test (JSON lines from `level` up, to nowhere) and a promise of the first entry whose
 * message is `msg`: a test waits for what the service says it did (e.g. 'fatal: shutting down') instead of sleeping.
 */
export function logProbe(
  service: string,
  msg: string,
  level = 'error',
): { readonly log: Logger; readonly seen: Promise<Record<string, unknown>> } {
  let resolve!: (entry: Record<string, unknown>) => void;
  const seen = new Promise<Record<string, unknown>>((r) => (resolve = r));
  const log = createLogger(service, level, {
    write(line: string) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] === msg) resolve(entry);
    },
  });
  return { log, seen };
}
