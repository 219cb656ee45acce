// @mailgate/testkit — real servers on loopback for tests. See README.md.
export { freePort, freeUdpPort, waitFor, tcpRequest, type WaitForOptions } from './net.js';
export { makeTempDir, removeTempDir, ManagedProcess, type ExitInfo } from './process.js';
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
  startRbldnsd,
  type RbldnsdZone,
  type RbldnsdDatasetType,
  type StartRbldnsdOptions,
  type RbldnsdHandle,
} from './rbldnsd.js';
export {
  startDnsServer,
  dnsOutcome,
  type DnsRecord,
  type DnsRecordType,
  type DnsFault,
  type DnsQueryLogEntry,
  type StartDnsServerOptions,
  type DnsServerHandle,
} from './dns-server.js';
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
  startKafka,
  startKafkaProcess,
  type StartKafkaOptions,
  type KafkaHandle,
  type StartKafkaProcessOptions,
  type KafkaProcessHandle,
} from './kafka.js';
export {
  sendMail,
  rawSmtp,
  takeSmtpReplies,
  type SendMailOptions,
  type RawSmtpClient,
  type SmtpReply,
} from './smtp-client.js';
export {
  testTrace,
  testPipelineMessage,
  pipelineRecord,
  producePipelineMessages,
  readTopic,
  observeTopics,
  groupCaughtUp,
  testStageContext,
  testStageService,
  FAST_GROUP,
  type ReadTopicOptions,
  type Observed,
  type TopicObserver,
} from './pipeline.js';
export {
  dkimpySign,
  dkimpyVerify,
  dkimpyArcSign,
  dkimpyArcVerify,
  opendkimVerify,
  runWithSandboxDns,
  run as runCommand,
  DKIMPY_PYTHON,
  type DkimpySignOptions,
  type DkimpyVerdict,
  type DkimpyArcSignOptions,
  type DnsAddress,
  type RunResult,
} from './mail-auth.js';
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
export {
  MIME_CONFUSION_SHAPES,
  PE_INVOICE_EXE,
  EXE_NAME,
  carriesPayload,
  uuencode,
  b64,
  type ConfusionShape,
} from './mime-confusion.js';
export { logProbe } from './log-probe.js';
