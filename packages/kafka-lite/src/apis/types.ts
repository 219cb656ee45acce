// What every API module (src/apis/*.ts) provides, and the request context the connection hands it.
import type { Broker } from '../broker.js';
import { compileMessage, type Message } from '../schema/codec.js';
import { MESSAGES } from '../schema/messages.js';

/** This single broker's node id: every partition leader, the controller and every coordinator. */
export const NODE_ID = 1;

/** The parts of a connection a handler may use (parked requests register their cleanup here). */
export interface ConnInfo {
  readonly clientHost: string;
  readonly parked: Set<() => void>;
}

export interface Ctx {
  broker: Broker;
  conn: ConnInfo;
  version: number;
  clientId: string;
}

/** A response body (plain object, encoded by the schema codec), or null for "send no response" (acks=0). */
export type Body = object;
export type Result = Body | null | Promise<Body | null>;

export interface Api {
  key: number;
  name: string;
  /** Advertised (and served) version range. */
  min: number;
  max: number;
  request: Message;
  response: Message;
  handle(req: Record<string, unknown>, ctx: Ctx): Result;
  /**
   * The response to a request this broker decodes but does not serve at that version: `code` in every error field
   * the response has (top-level, per topic/partition). Without it only a top-level `errorCode` is set.
   */
  errorResponse?(req: Record<string, unknown>, code: number): Body;
}

type RequestNames<K> = K extends `${infer N}Request` ? N : never;
type ApiName = RequestNames<keyof typeof MESSAGES>;

/** Declares an API: `Req` is the decoded request shape the handler reads (camelCase Kafka field names). */
export function defineApi<Req>(def: {
  name: ApiName;
  versions: [number, number];
  handle(req: Req, ctx: Ctx): Result;
  errorResponse?(req: Req, code: number): Body;
}): Api {
  const request = compileMessage(MESSAGES[`${def.name}Request`]);
  const response = compileMessage(MESSAGES[`${def.name}Response`]);
  const errorResponse = def.errorResponse;
  return {
    key: request.apiKey,
    name: def.name,
    min: def.versions[0],
    max: def.versions[1],
    request,
    response,
    handle: (req, ctx) => def.handle(req as Req, ctx),
    errorResponse: errorResponse && ((req, code) => errorResponse(req as Req, code)),
  };
}
