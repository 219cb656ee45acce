import { dnsblSchema, type DnsblConfig } from '@mailgate/dnsbl';

/**
 * The `dnsbl:` section. Declared in @mailgate/dnsbl so ingress-smtp (the connect filter) and this stage validate
 * one schema; documented in docs/dnsbl.md.
 */
export const dnsblCheckSchema = dnsblSchema;
export type DnsblCheckConfig = DnsblConfig;
