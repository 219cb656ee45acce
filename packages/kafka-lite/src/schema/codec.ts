// One file (~365 lines): decode and encode of the same field plans must stay side by side (a version rule
// changed in one and not the other breaks the wire format).
// Schema-driven codec: decodes any version of a request and encodes any version of a response from Kafka's own
// message definitions (./messages.ts, generated from the upstream JSON files). Handlers (src/apis/*) therefore see
// one plain object shape per API (camelCase field names; fields absent in a version hold their defaults) and never
// branch on wire layouts. It covers the classic and the flexible encodings (KIP-482: compact strings/arrays/bytes,
// tagged fields) and charges every decoded struct and array element to the request's decode budget.
import { ProtocolError, Reader, Writer } from '../protocol.js';

// ---- spec (the generated data) -----------------------------------------------------------------

export interface FieldOpts {
  nullable?: string;
  tagged?: string;
  tag?: number;
  default?: string;
  flexible?: string;
}
export type FieldTuple = [string, string, string, FieldOpts?, FieldTuple[]?];
export interface MessageSpec {
  apiKey: number;
  validVersions: string;
  flexibleVersions: string;
  fields: FieldTuple[];
}

/** A record set to encode without copying: the chunks of a fetched log range. */
export interface ChunkedBytes {
  chunks: Buffer[];
  len: number;
}

// ---- compiled form -------------------------------------------------------------------------------

type Range = readonly [number, number]; // inclusive; [1, 0] = no version

function parseRange(s: string | undefined): Range {
  if (!s || s === 'none') return [1, 0];
  if (s.endsWith('+')) return [Number(s.slice(0, -1)), 0x7fff];
  const dash = s.indexOf('-');
  if (dash > 0) return [Number(s.slice(0, dash)), Number(s.slice(dash + 1))];
  return [Number(s), Number(s)];
}
const inRange = (r: Range, v: number): boolean => v >= r[0] && v <= r[1];

interface Field {
  name: string;
  type: string; // scalar | '[]' (array of structs) | '{}' (struct) | '[]<scalar>'
  versions: Range;
  nullable: Range;
  tagged: Range;
  tag: number;
  flexible: Range | null;
  defaultSpec: string | undefined;
  /** Precomputed default of a scalar field (arrays and structs get a fresh value per use). */
  scalarDefault: unknown;
  fields: Field[] | null;
}

interface Plan {
  regular: Field[];
  tagged: Map<number, Field>;
  taggedList: Field[];
  absent: Field[];
  minBytes: number;
}

export interface Message {
  apiKey: number;
  valid: Range;
  flexible: Range;
  fields: Field[];
}

const ZERO_UUID = Buffer.alloc(16);
const camel = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);

function compileFields(tuples: FieldTuple[]): Field[] {
  return tuples.map(([name, type, versions, opts = {}, sub]) => {
    const f: Field = {
      name: camel(name),
      type,
      versions: parseRange(versions),
      nullable: parseRange(opts.nullable),
      tagged: parseRange(opts.tagged),
      tag: opts.tag ?? -1,
      flexible: opts.flexible ? parseRange(opts.flexible) : null,
      defaultSpec: opts.default,
      scalarDefault: undefined,
      fields: sub ? compileFields(sub) : null,
    };
    f.scalarDefault = scalarDefaultOf(f);
    return f;
  });
}

export function compileMessage(spec: MessageSpec): Message {
  return {
    apiKey: spec.apiKey,
    valid: parseRange(spec.validVersions),
    flexible: parseRange(spec.flexibleVersions),
    fields: compileFields(spec.fields),
  };
}

export const isFlexible = (m: Message, v: number): boolean => inRange(m.flexible, v);
export const isValidVersion = (m: Message, v: number): boolean => inRange(m.valid, v);

const plans = new WeakMap<Field[], Map<number, Plan>>();
const SCALAR_MIN: Record<string, number> = {
  int8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  int64: 8,
  float64: 8,
  bool: 1,
  uuid: 16,
};

function minBytes(f: Field, v: number, flex: boolean): number {
  const min = SCALAR_MIN[f.type];
  if (min !== undefined) return min;
  if (f.type === '{}') return inRange(f.nullable, v) ? 1 : plan(f.fields!, v, flex).minBytes;
  if (f.type === 'string') return flex ? 1 : 2;
  return flex ? 1 : 4; // bytes, records, arrays
}

function plan(fields: Field[], v: number, flex: boolean): Plan {
  let byVersion = plans.get(fields);
  if (!byVersion) plans.set(fields, (byVersion = new Map()));
  const key = flex ? v + 0x10000 : v;
  let p = byVersion.get(key);
  if (p) return p;
  p = { regular: [], tagged: new Map(), taggedList: [], absent: [], minBytes: flex ? 1 : 0 };
  for (const f of fields) {
    if (!inRange(f.versions, v)) p.absent.push(f);
    else if (flex && f.tag >= 0 && inRange(f.tagged, v)) {
      p.tagged.set(f.tag, f);
      p.taggedList.push(f);
    } else {
      p.regular.push(f);
      p.minBytes += minBytes(f, v, flex);
    }
  }
  byVersion.set(key, p);
  return p;
}

function defaultOf(f: Field, v: number): unknown {
  if (f.type === '{}') return defaults(f.fields!, v);
  if (f.type.startsWith('[]')) return f.defaultSpec === 'null' ? null : [];
  if (f.type === 'bytes' && f.defaultSpec !== 'null') return Buffer.alloc(0);
  return f.scalarDefault;
}

function scalarDefaultOf(f: Field): unknown {
  const d = f.defaultSpec;
  switch (f.type) {
    case 'bool':
      return d === 'true';
    case 'string':
      return d === 'null' ? null : (d ?? '');
    case 'bytes':
      return d === 'null' ? null : Buffer.alloc(0);
    case 'records':
      return null;
    case 'uuid':
      return ZERO_UUID;
    case '{}':
      return undefined;
    default:
      if (f.type.startsWith('[]')) return undefined;
      return d === undefined ? 0 : Number(d);
  }
}

function defaults(fields: Field[], v: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of fields) o[f.name] = defaultOf(f, v);
  return o;
}

// ---- decode ----------------------------------------------------------------------------------------

function readScalar(r: Reader, type: string, nullable: boolean, flex: boolean): unknown {
  switch (type) {
    case 'int8':
      return r.int8();
    case 'int16':
      return r.int16();
    case 'uint16':
      return r.uint16();
    case 'int32':
      return r.int32();
    case 'int64':
      return r.int64();
    case 'float64':
      return r.float64();
    case 'bool':
      return r.bool();
    case 'uuid':
      return r.uuid();
    case 'string':
      return nullable ? r.nstring(flex) : r.string(flex);
    case 'bytes':
      return nullable ? r.nbytes(flex) : r.bytes(flex);
    case 'records':
      return r.nbytes(flex);
    default:
      throw new ProtocolError(`unknown field type ${type}`);
  }
}

function readValue(r: Reader, f: Field, v: number, flex: boolean): unknown {
  if (f.flexible) flex = inRange(f.flexible, v);
  const nullable = inRange(f.nullable, v);
  if (f.type === '[]') {
    const n = r.count(flex, plan(f.fields!, v, flex).minBytes);
    if (n < 0) return nullable ? null : [];
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = decodeStruct(r, f.fields!, v, flex);
    return out;
  }
  if (f.type === '{}') {
    if (nullable && r.int8() < 0) return null;
    r.spend(1);
    return decodeStruct(r, f.fields!, v, flex);
  }
  if (f.type.startsWith('[]')) {
    const elem = f.type.slice(2);
    const n = r.count(flex, SCALAR_MIN[elem] ?? (flex ? 1 : 2));
    if (n < 0) return nullable ? null : [];
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = readScalar(r, elem, false, flex);
    return out;
  }
  return readScalar(r, f.type, nullable, flex);
}

function decodeStruct(r: Reader, fields: Field[], v: number, flex: boolean): Record<string, unknown> {
  const p = plan(fields, v, flex);
  const o: Record<string, unknown> = {};
  for (const f of p.regular) o[f.name] = readValue(r, f, v, flex);
  for (const f of p.absent) o[f.name] = defaultOf(f, v);
  if (flex) {
    for (const f of p.taggedList) o[f.name] = defaultOf(f, v);
    const n = r.tagCount();
    for (let i = 0; i < n; i++) {
      const tag = r.uvarint();
      const size = r.uvarint();
      const f = p.tagged.get(tag);
      if (f) o[f.name] = readValue(new Reader(r.buf, r.pos, r.budget, r.pos + size), f, v, flex);
      r.skip(size);
    }
  }
  return o;
}

/** Decodes a request body of version `v` (the Reader is positioned after the request header). */
export function decode(m: Message, r: Reader, v: number): Record<string, unknown> {
  r.spend(1);
  return decodeStruct(r, m.fields, v, isFlexible(m, v));
}

// ---- encode ----------------------------------------------------------------------------------------

function writeScalar(w: Writer, type: string, nullable: boolean, flex: boolean, val: unknown): void {
  switch (type) {
    case 'int8':
      w.int8(val as number);
      return;
    case 'int16':
      w.int16(val as number);
      return;
    case 'uint16':
      w.uint16(val as number);
      return;
    case 'int32':
      w.int32(val as number);
      return;
    case 'int64':
      w.int64(val as number | bigint);
      return;
    case 'float64':
      w.float64(val as number);
      return;
    case 'bool':
      w.bool(val as boolean);
      return;
    case 'uuid':
      w.raw((val as Buffer | null) ?? ZERO_UUID);
      return;
    case 'string':
      if (nullable) w.nstring(val as string | null, flex);
      else w.string((val as string | null) ?? '', flex);
      return;
    case 'bytes':
    case 'records': {
      if (val && typeof val === 'object' && 'chunks' in val) {
        const c = val as ChunkedBytes;
        w.bytesChunks(c.chunks, c.len, flex);
      } else if (val == null && !nullable && type === 'bytes') w.nbytes(Buffer.alloc(0), flex);
      else w.nbytes(val as Buffer | null, flex);
      return;
    }
    default:
      throw new Error(`unknown field type ${type}`);
  }
}

function writeValue(w: Writer, f: Field, v: number, flex: boolean, val: unknown): void {
  if (f.flexible) flex = inRange(f.flexible, v);
  const nullable = inRange(f.nullable, v);
  if (val === undefined || (val === null && !nullable)) val = defaultOf(f, v);
  if (f.type === '{}') {
    if (nullable) {
      w.int8(val === null ? -1 : 1);
      if (val === null) return;
    }
    encodeStruct(w, f.fields!, v, flex, val as Record<string, unknown>);
    return;
  }
  if (f.type.startsWith('[]')) {
    const items = val as unknown[] | null;
    if (items === null) {
      w.count(nullable ? -1 : 0, flex);
      return;
    }
    w.count(items.length, flex);
    if (f.type === '[]') for (const it of items) encodeStruct(w, f.fields!, v, flex, it as Record<string, unknown>);
    else {
      const elem = f.type.slice(2);
      for (const it of items) writeScalar(w, elem, false, flex, it);
    }
    return;
  }
  writeScalar(w, f.type, nullable, flex, val);
}

function isDefault(f: Field, v: number, val: unknown): boolean {
  if (val === undefined) return true;
  if (Array.isArray(val)) return val.length === 0 && f.defaultSpec !== 'null';
  if (val === null) return f.defaultSpec === 'null' || f.type === 'records';
  if (typeof val === 'object') return false; // structs and buffers: written whenever given
  return val === defaultOf(f, v);
}

function encodeStruct(w: Writer, fields: Field[], v: number, flex: boolean, o: Record<string, unknown>): void {
  const p = plan(fields, v, flex);
  for (const f of p.regular) writeValue(w, f, v, flex, o[f.name]);
  if (!flex) return;
  const present = p.taggedList.filter((f) => !isDefault(f, v, o[f.name]));
  w.uvarint(present.length);
  for (const f of present.sort((a, b) => a.tag - b.tag)) {
    const sub = new Writer(64);
    writeValue(sub, f, v, flex, o[f.name]);
    const chunks = sub.finish();
    w.uvarint(f.tag).uvarint(sub.length());
    for (const c of chunks) w.raw(c);
  }
}

/** Encodes a response body of version `v` from a plain object (missing fields are written as defaults). */
export function encode(m: Message, w: Writer, v: number, body: object): Writer {
  encodeStruct(w, m.fields, v, isFlexible(m, v), body as Record<string, unknown>);
  return w;
}
