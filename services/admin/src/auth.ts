import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ResolvedToken } from './config.js';

export const COOKIE = 'mailgate_token';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

/** The token presented by a request: `Authorization: Bearer …` (API) or the console's cookie. */
export function presentedToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  return parseCookies(req.headers.cookie)[COOKIE];
}

export function findToken(tokens: readonly ResolvedToken[], presented: string | undefined): ResolvedToken | undefined {
  if (!presented) return undefined;
  return tokens.find((t) => same(t.token, presented));
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: ResolvedToken;
  }
}

/** onRequest hook: every route but health/metrics and the console login needs a valid token. */
export function authHook(tokens: readonly ResolvedToken[]) {
  const open = new Set(['/healthz', '/readyz', '/metrics', '/console/login']);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0]!;
    if (open.has(path)) return;
    const t = findToken(tokens, presentedToken(req));
    if (!t) {
      if (path.startsWith('/console')) return reply.redirect('/console/login');
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'a valid API token is required' });
    }
    req.principal = t;
    if (req.method !== 'GET' && req.method !== 'HEAD' && t.role !== 'admin') {
      return reply.code(403).send({ error: 'forbidden', message: `token '${t.name}' is read-only` });
    }
  };
}
