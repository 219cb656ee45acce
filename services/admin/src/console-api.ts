import type { FastifyInstance, FastifyRequest, LightMyRequestResponse } from 'fastify';

/**
 * The console's pages act through the admin API, called in-process with the signed-in user's own cookie (or bearer
 * token): validation, the admin-role check and the audit record stay the API's, not a copy. `body` is sent as is,
 * with its content type.
 */
export function callApiAs(
  app: FastifyInstance,
  req: FastifyRequest,
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: { readonly type: string; readonly data: string | Buffer },
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url,
    headers: {
      ...(req.headers.cookie ? { cookie: req.headers.cookie } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(body ? { 'content-type': body.type } : {}),
    },
    ...(body ? { payload: body.data } : {}),
  });
}
