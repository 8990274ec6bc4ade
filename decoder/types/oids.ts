/**
 * OIDs of PostgreSQL's built-in types (stable since PostgreSQL 14; they are fixed in
 * `pg_type.dat`), with each type's name and the OID of its array type.
 *
 * @module
 */

/**
 * Built-in type OIDs by type name (`pg_type.typname`; `char` is the one-byte `"char"` type,
 * `bpchar` is `character(n)`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Oid } from "./oids.ts";
 * assert.equal(Oid.int4, 23);
 * assert.equal(Oid.jsonb, 3802);
 * ```
 */
export const Oid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int2vector: 22,
  int4: 23,
  regproc: 24,
  text: 25,
  oid: 26,
  tid: 27,
  xid: 28,
  cid: 29,
  oidvector: 30,
  json: 114,
  xml: 142,
  point: 600,
  lseg: 601,
  path: 602,
  box: 603,
  polygon: 604,
  line: 628,
  cidr: 650,
  float4: 700,
  float8: 701,
  unknown: 705,
  circle: 718,
  macaddr8: 774,
  money: 790,
  macaddr: 829,
  inet: 869,
  aclitem: 1033,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  refcursor: 1790,
  regprocedure: 2202,
  regoper: 2203,
  regoperator: 2204,
  regclass: 2205,
  regtype: 2206,
  record: 2249,
  uuid: 2950,
  txid_snapshot: 2970,
  pg_lsn: 3220,
  tsvector: 3614,
  tsquery: 3615,
  regconfig: 3734,
  regdictionary: 3769,
  jsonb: 3802,
  int4range: 3904,
  numrange: 3906,
  tsrange: 3908,
  tstzrange: 3910,
  daterange: 3912,
  int8range: 3926,
  jsonpath: 4072,
  regnamespace: 4089,
  regrole: 4096,
  regcollation: 4191,
  int4multirange: 4451,
  nummultirange: 4532,
  tsmultirange: 4533,
  tstzmultirange: 4534,
  datemultirange: 4535,
  int8multirange: 4536,
  pg_snapshot: 5038,
  xid8: 5069,
} as const;

/** A built-in type's name. */
export type BuiltinTypeName = keyof typeof Oid;

/** What a built-in type is: a scalar, a range over `subtype`, or a multirange of `range`. */
export type BuiltinType =
  | { oid: number; name: string; arrayOid: number; kind: "base"; delimiter?: string }
  | { oid: number; name: string; arrayOid: number; kind: "range"; subtypeOid: number }
  | { oid: number; name: string; arrayOid: number; kind: "multirange"; rangeOid: number };

const RANGES: Record<string, [subtype: number, multirange: number]> = {
  int4range: [Oid.int4, Oid.int4multirange],
  numrange: [Oid.numeric, Oid.nummultirange],
  tsrange: [Oid.timestamp, Oid.tsmultirange],
  tstzrange: [Oid.timestamptz, Oid.tstzmultirange],
  daterange: [Oid.date, Oid.datemultirange],
  int8range: [Oid.int8, Oid.int8multirange],
};

/** Array type OID of each built-in type (`pg_type.typarray`). */
const ARRAY_OIDS: Record<BuiltinTypeName, number> = {
  bool: 1000,
  bytea: 1001,
  char: 1002,
  name: 1003,
  int8: 1016,
  int2: 1005,
  int2vector: 1006,
  int4: 1007,
  regproc: 1008,
  text: 1009,
  oid: 1028,
  tid: 1010,
  xid: 1011,
  cid: 1012,
  oidvector: 1013,
  json: 199,
  xml: 143,
  point: 1017,
  lseg: 1018,
  path: 1019,
  box: 1020,
  polygon: 1027,
  line: 629,
  cidr: 651,
  float4: 1021,
  float8: 1022,
  unknown: 0,
  circle: 719,
  macaddr8: 775,
  money: 791,
  macaddr: 1040,
  inet: 1041,
  aclitem: 1034,
  bpchar: 1014,
  varchar: 1015,
  date: 1182,
  time: 1183,
  timestamp: 1115,
  timestamptz: 1185,
  interval: 1187,
  timetz: 1270,
  bit: 1561,
  varbit: 1563,
  numeric: 1231,
  refcursor: 2201,
  regprocedure: 2207,
  regoper: 2208,
  regoperator: 2209,
  regclass: 2210,
  regtype: 2211,
  record: 2287,
  uuid: 2951,
  txid_snapshot: 2949,
  pg_lsn: 3221,
  tsvector: 3643,
  tsquery: 3645,
  regconfig: 3735,
  regdictionary: 3770,
  jsonb: 3807,
  int4range: 3905,
  numrange: 3907,
  tsrange: 3909,
  tstzrange: 3911,
  daterange: 3913,
  int8range: 3927,
  jsonpath: 4073,
  regnamespace: 4090,
  regrole: 4097,
  regcollation: 4192,
  int4multirange: 6150,
  nummultirange: 6151,
  tsmultirange: 6152,
  tstzmultirange: 6153,
  datemultirange: 6155,
  int8multirange: 6157,
  pg_snapshot: 5039,
  xid8: 271,
};

function buildTypes(): BuiltinType[] {
  const out: BuiltinType[] = [];
  for (const [name, oid] of Object.entries(Oid)) {
    const arrayOid = ARRAY_OIDS[name as BuiltinTypeName];
    const range = RANGES[name];
    if (range) {
      out.push({ oid, name, arrayOid, kind: "range", subtypeOid: range[0] });
      continue;
    }
    const multirangeOf = Object.entries(RANGES).find(([, r]) => r[1] === oid);
    if (multirangeOf) {
      const rangeOid = Oid[multirangeOf[0] as BuiltinTypeName];
      out.push({ oid, name, arrayOid, kind: "multirange", rangeOid });
      continue;
    }
    // box is the only built-in type whose array delimiter is not a comma.
    if (oid === Oid.box) out.push({ oid, name, arrayOid, kind: "base", delimiter: ";" });
    else out.push({ oid, name, arrayOid, kind: "base" });
  }
  return out;
}

/** Every built-in type the registry preloads, in OID order. Their arrays are implied. */
export const BUILTIN_TYPES: readonly BuiltinType[] = Object.freeze(buildTypes());
