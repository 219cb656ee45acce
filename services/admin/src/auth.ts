import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ResolvedToken } from './config.js';
import type { AuthThrottle } from './throttle.js';

export const COOKIE = 'mailgate_token';

/** A request the server cannot read (answered 400 with a JSON error, never a 500). */
export class MalformedRequestError extends Error {
  readonly http = 400;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The value of one cookie. Only that cookie is decoded: other cookies for this host (cookies are not per port, so
 * other applications on the same host name set them too) are none of our business and never break a request.
 * Our own cookie with broken percent-encoding is a MalformedRequestError.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      throw new MalformedRequestError(`malformed Cookie header: ${name} is not valid percent-encoding`);
    }
  }
  return undefined;
}

/**
 * The token presented by a request: `Authorization: Bearer …` (API; the scheme is case-insensitive, RFC 9110
 * §11.1) or the console's cookie. An empty token counts as none.
 */
export function presentedToken(req: FastifyRequest): string | undefined {
  const m = /^bearer[ \t]+(.*)$/i.exec(req.headers.authorization ?? '');
  const t = m ? m[1]!.trim() : cookieValue(req.headers.cookie, COOKIE);
  return t || undefined;
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

const CLEAR_COOKIE = `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0`;

/**
 * onRequest hook: every route but health/metrics and the console login needs a valid token. A client that
 * presented too many wrong tokens is refused (429 + Retry-After) before its token is even compared.
 */
export function authHook(tokens: readonly ResolvedToken[], throttle?: AuthThrottle) {
  const open = new Set(['/healthz', '/readyz', '/metrics', '/console/login']);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0]!;
    if (open.has(path)) return;
    let presented: string | undefined;
    try {
      presented = presentedToken(req);
    } catch (err) {
      if (!(err instanceof MalformedRequestError)) throw err;
      return reply.code(400).send({ error: 'bad-request', message: err.message });
    }
    const ip = throttle?.clientIp(req) ?? '';
    if (presented && throttle) {
      const d = await throttle.check(ip);
      if (!d.ok) {
        return reply
          .code(d.status)
          .header('retry-after', String(d.retryAfter))
          .send({ error: d.status === 429 ? 'too-many-requests' : 'unavailable', message: d.message });
      }
    }
    const t = findToken(tokens, presented);
    if (!t) {
      if (presented) {
        await throttle?.failed(ip, path);
      }
      // A stale console cookie is dropped with the redirect, so it is counted once, not on every page load.
      if (path.startsWith('/console')) {
        if (presented && !req.headers.authorization) reply.header('set-cookie', CLEAR_COOKIE);
        return reply.redirect('/console/login');
      }
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
