export { service, createIngressService, type IngressServiceOptions } from './service.js';
export { ingressSchema, type IngressConfig, type ListenerKind } from './config.js';
export { createIngress, type Ingress, type IngressDeps, type IngressStats, type ListenerAddress } from './ingress.js';
export { parsePath, parseMailbox, normalizeDomain, commandArgument, type Mailbox, type PathParse } from './address.js';
export {
  buildRelayPolicy,
  checkRecipient,
  decideRecipient,
  directionOf,
  isAcceptedDomainMailbox,
  parseRecipient,
  type AcceptedDomainConfig,
  type ClientFacts,
  type RcptDecision,
  type RelayPolicy,
} from './relay.js';
export { networkMatcher, parseCidr, normalizeIp, type NetworkMatcher } from './cidr.js';
export { hashPassword, verifyPassword, isPasswordHash, type HashOptions } from './password.js';
export { LineEndingGuard } from './line-endings.js';
export { ingressHeaders, receivedHeader, stripHeaders, rfc5322Date } from './headers.js';
export { listedReplyText, type ConnectFilter, type ConnectFilterResult } from './connect-filter.js';
export { loadUsers, type UserStore } from './users.js';
export { createSenderAuthPhase, authSummary, type SenderAuthPhase, type MailFromAuth } from './sender-auth-phase.js';
export { createRefusalRecorder, type RefusalFacts, type RefusalRecorder } from './refusals.js';
export { messageFacts, type MessageFacts } from './message-facts.js';
export { REPLIES, SmtpReplyError, replyLine, replyText, smtpError, type SmtpReply } from './replies.js';
export {
  buildAccepted,
  type Accepted,
  type AcceptedAuth,
  type AcceptedContext,
  type AcceptedSession,
} from './phases/accepted.js';
