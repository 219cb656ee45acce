export { startBroker, Broker, type BrokerOptions, type BrokerHandle } from './broker.js';
export { runBrokerCli, parseBrokerArgs } from './cli.js';
export { DEFAULT_LIMITS, type Limits } from './limits.js';
export { jsonLogger, type Logger, type LogLevel } from './logger.js';
export type { FsyncPolicy } from './store.js';
