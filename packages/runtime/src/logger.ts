import pino, { type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs (one line per event) with the service name on every line. */
export function createLogger(service: string, level = 'info', destination?: pino.DestinationStream): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(opts, destination) : pino(opts, pino.destination({ fd: 2, sync: false }));
}
