export {
  RspamdClient,
  parseCheck,
  topSymbols,
  type RspamdClientOptions,
  type RspamdEndpoint,
  type CheckEnvelope,
  type CheckResult,
  type RspamdSymbol,
  type LearnResult,
  type RspamdStat,
  type BayesStat,
} from './client.js';
export {
  RspamdUnavailableError,
  RspamdRequestError,
  RspamdNotLearnedError,
  type RspamdErrorKind,
  type NotLearnedReason,
} from './errors.js';
