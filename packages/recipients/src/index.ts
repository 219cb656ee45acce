// @mailgate/recipients — who exists behind the gateway: recipient validation at RCPT. See checker.ts.
export {
  recipientsSchema,
  recipientSourceSchema,
  DEFAULT_LDAP_FILTER,
  type RecipientsConfig,
  type RecipientSourceConfig,
  type LdapSourceConfig,
  type CalloutSourceConfig,
  type StaticSourceConfig,
} from './config.js';
export {
  RecipientChecker,
  checkRecipient,
  type RecipientDecision,
  type RecipientCheckerOptions,
  type CheckerStats,
} from './checker.js';
export { HarvestGuard, type HarvestVerdict } from './harvest.js';
export { LdapSource, escapeFilterValue, renderFilter } from './ldap.js';
export { CalloutSource } from './callout.js';
export { StaticSource } from './static.js';
export { SourceUnavailableError, type RecipientSource, type RecipientQuery, type LookupResult } from './source.js';
