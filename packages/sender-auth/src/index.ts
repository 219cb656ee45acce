// @mailgate/sender-auth — SPF, DKIM, DMARC and ARC on the way in; DKIM signing and ARC sealing on the way out.
export * from './config.js';
export * from './results.js';
export { AuthDns, isTemporaryDnsError, type AuthDnsOptions, type DnsFailure, type MailauthResolver } from './dns.js';
export { SenderAuth, type SenderAuthOptions, type SpfInput, type MessageInput, type SessionInput } from './verifier.js';
export * from './policy.js';
export {
  authResultsHeader,
  authResultsValue,
  authResultsClauses,
  authservIdOf,
  removeAuthResults,
  removeFields,
  type AuthResultsOptions,
  type RemovedHeaders,
} from './auth-results.js';
export {
  loadSigningKeys,
  signMessage,
  arcSeal,
  parsePrivateKey,
  dkimDnsRecord,
  SigningKeyError,
  type SigningKeys,
  type LoadedKey,
  type SignOptions,
  type SignResult,
} from './signing.js';
export { canonicalBody, canonicalHeader, type Canonicalization } from './dkim-sign.js';
export { orgDomain } from './org-domain.js';
