// @mailgate/devstack — the real servers `mailgate dev` starts on loopback when none is running (Redis, clamd with
// the EICAR test signature, rspamd, slapd, an SMTP sink), and the process/port helpers they share. The tests use
// them too, through @mailgate/testkit, which re-exports them; production code paths never load either.
export { freePort, freeUdpPort, waitFor, tcpRequest, type WaitForOptions } from './net.js';
export {
  makeTempDir,
  removeTempDir,
  ManagedProcess,
  waitUntilReady,
  sleep,
  withPortRetry,
  launchOnPort,
  launchInTempDir,
  removeDirOnFailure,
  type ExitInfo,
} from './process.js';
export { startRedis, isolatedRedisPrefix, type StartRedisOptions, type RedisHandle } from './redis.js';
export {
  startClamd,
  clamdCommand,
  clamdScan,
  EICAR,
  EICAR_SIGNATURE,
  EICAR_FOUND_NAME,
  CLAMD_BINARY,
  type StartClamdOptions,
  type ClamdHandle,
  type ClamdSignature,
} from './clamd.js';
export {
  startSmtpSink,
  type Sink,
  type SinkMessage,
  type SinkReply,
  type SinkRejection,
  type SinkStage,
  type StartSmtpSinkOptions,
  type BeforeDataReply,
} from './smtp-sink.js';
export { testTlsCert, TEST_TLS_SUBJECT_ALT_NAMES, type TlsKeyPair } from './tls.js';
export {
  startSlapd,
  ldapSource,
  SLAPD_BINARY,
  type StartSlapdOptions,
  type SlapdHandle,
  type SlapdUser,
} from './slapd.js';
export {
  startRspamd,
  textMessage,
  GTUBE,
  RSPAMD_BINARY,
  RSPAMC_BINARY,
  RSPAMD_DISABLED_MODULES,
  type StartRspamdOptions,
  type RspamdHandle,
} from './rspamd.js';
