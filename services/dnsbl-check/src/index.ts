// @mailgate/dnsbl-check — the DNS block list stage (client IP, Received origin, HELO/sender, body URLs).
export { service, dnsblCheckService } from './service.js';
export { createDnsblStage, planChecks, headerValue, type DnsblStageDeps, type Plan } from './stage.js';
export { findOrigin, receivedFromIp, type Origin } from './received.js';
export { urlHosts, bodyTexts } from './urls.js';
export { headerValues, prependHeader } from '@mailgate/mail';
export { dnsblCheckSchema, type DnsblCheckConfig } from './config.js';
