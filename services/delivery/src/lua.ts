import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * A Lua script run by its SHA (EVALSHA: the body is sent once per server, not with every call), falling back to
 * EVAL when the server does not know it yet (first use, or after a Redis restart flushed its script cache).
 * Keys go through ioredis' keyPrefix like any other key argument.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Lua helpers shared by the scripts: `call_range(cmd, from, to)` calls a variadic command on KEYS[from..to] in
 * slices (unpack() of thousands of keys would overflow Lua's C stack) and returns the concatenated replies.
 */
export const LUA_CALL_RANGE = `
local function call_range(cmd, from, to)
  local out = {}
  local s = from
  while s <= to do
    local e = math.min(s + 999, to)
    local part = redis.call(cmd, unpack(KEYS, s, e))
    if type(part) == 'table' then
      for i = 1, #part do out[#out + 1] = part[i] end
    end
    s = e + 1
  end
  return out
end
`;
