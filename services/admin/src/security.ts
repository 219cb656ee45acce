import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CONSOLE_STYLE } from './console.js';

/**
 * Response headers for every answer of the admin HTTP surface — console pages, API JSON, quarantined message
 * downloads (attacker-supplied content), errors, 404s and health: no page may run script, be framed, be sniffed
 * into another content type, be cached by a browser or proxy (tokens and message data), or leak its URL.
 *
 * The console's only inline content is its one <style> element; it is allowed by hash, so nothing else inline
 * (an injected <style> or <script>) can apply.
 */
export const STYLE_HASH = `sha256-${createHash('sha256').update(CONSOLE_STYLE).digest('base64')}`;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'none'",
    `style-src '${STYLE_HASH}'`,
    "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; '),
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * onRequest hook, registered before authentication so 401/403/429 carry the headers too. Set on the raw response:
 * Node merges them into whatever fastify (or a hijacked handler such as /metrics) writes later.
 */
export function securityHeadersHook() {
  return async (_req: FastifyRequest, reply: FastifyReply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(k, v);
  };
}
