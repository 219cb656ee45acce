// @mailgate/testkit — real servers on loopback for tests. See README.md.
// The servers `mailgate dev` also starts (Redis, clamd, rspamd, slapd, the SMTP sink) and the process/port helpers
// live in @mailgate/devstack; they are re-exported here so tests import one package.
export * from '@mailgate/devstack';
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
  MIME_CONFUSION_SHAPES,
  PE_INVOICE_EXE,
  EXE_NAME,
  carriesPayload,
  uuencode,
  b64,
  type ConfusionShape,
} from './mime-confusion.js';
export { logProbe } from './log-probe.js';
