import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

export type { Logger };

/** json: one JSON object per line (what log collectors want); pretty: coloured, one readable line per event. */
export type LogFormat = 'json' | 'pretty';

/**
 * The log format: $MAILGATE_LOG_FORMAT (set by `mailgate --pretty`) over the configured `logging.format`, else json.
 * An unknown value is an error rather than silently JSON, so a typo does not look like "pretty does not work".
 */
export function logFormat(configured?: LogFormat, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const e = env['MAILGATE_LOG_FORMAT'];
  if (e === undefined || e === '') return configured ?? 'json';
  if (e === 'json' || e === 'pretty') return e;
  throw new Error(`MAILGATE_LOG_FORMAT must be json or pretty, not ${JSON.stringify(e)}`);
}

/**
 * pino-pretty as an in-process stream (not a worker-thread transport: nothing to start or flush at exit). Loaded
 * only when asked for, so JSON logging in production never loads it.
 */
function prettyStream(destination: pino.DestinationStream | undefined, colorize: boolean): pino.DestinationStream {
  const require = createRequire(import.meta.url);
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => pino.DestinationStream;
  return pretty({
    destination: destination ?? 2,
    sync: destination === undefined ? false : true,
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    // The service name leads the message; pid and host add nothing on one machine.
    messageFormat: '{service}: {msg}',
    ignore: 'pid,hostname,service',
  });
}

/** Structured logs with the service name on every line: JSON (default) or pretty for a terminal. */
export function createLogger(
  service: string,
  level = 'info',
  destination?: pino.DestinationStream,
  format: LogFormat = logFormat(),
): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (format === 'pretty') {
    // pretty reads pino's numeric levels; the label formatter is for JSON consumers only.
    const { formatters: _unused, ...prettyOpts } = opts;
    void _unused;
    return pino(prettyOpts, prettyStream(destination, destination === undefined && Boolean(process.stderr.isTTY)));
  }
  return destination ? pino(opts, destination) : pino(opts, pino.destination({ fd: 2, sync: false }));
}
