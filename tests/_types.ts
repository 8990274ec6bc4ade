/**
 * Helpers for `types_conformance_test.ts`: stream the inserts of one table through a real
 * {@linkcode ReplicationSource} (text or binary mode), and check typed values against the
 * server's own renderings of the same values (`col::text`, `to_jsonb(col)::text`).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { Oid } from "../decoder/types/oids.ts";
import type { PgValue, TypeRegistry } from "../decoder/types/registry.ts";
import { EVENT_RELATION, type Row } from "../events.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { connectOptions, nextBatch } from "./_replication.ts";

/** Rows of one table as a source decoded them, with what they were decoded with. */
export interface Streamed {
  rows: Row[];
  relation: RelationMessage;
  /** The registry the source loaded the catalog types into (`source.assembler.types`). */
  registry: TypeRegistry;
}

/** Opens a source on a new permanent slot of `publication` (the slot is created at open). */
export function openSource(
  pg: PgServer,
  slot: string,
  publication: string,
  binary: boolean,
): Promise<ReplicationSource> {
  return ReplicationSource.open({
    connection: connectOptions(pg),
    slot,
    createSlot: true,
    publication,
    binary,
    messages: false,
    statusIntervalMs: 1000,
  });
}

/**
 * Reads `source` until the commit of the transaction holding the `count`-th insert into
 * `table`, confirms it, and returns those inserts' rows in order. Does not close the source.
 */
export async function collectInserts(
  source: ReplicationSource,
  table: string,
  count: number,
  timeoutMs = 20_000,
): Promise<Streamed> {
  const iterator = source.batches();
  const rows: Row[] = [];
  let relation: RelationMessage | undefined;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const batch = await nextBatch(iterator, deadline, {
        timeout: `timed out with ${rows.length} of ${count} rows`,
        ended: "the source ended",
      });
      for (const item of batch) {
        if (item.kind === "change" && item.event.op === "c" && item.event.source.table === table) {
          rows.push(item.event.after!);
          relation = item.event[EVENT_RELATION];
        } else if (item.kind === "commit") {
          source.confirm(item.endLsn);
          if (rows.length >= count) {
            assert.equal(rows.length, count, "more inserts than expected");
            assert.ok(relation !== undefined, "change events carry their relation");
            await source.flushStatus();
            return { rows, relation, registry: source.assembler.types };
          }
        }
      }
    }
  } finally {
    await iterator.return(undefined);
  }
}

/**
 * Opens a text-mode and a binary-mode source (slots `<prefix>_text`, `<prefix>_binary`), runs
 * `insert`, and returns the `count` rows each decoded.
 */
export async function streamTextAndBinary(
  pg: PgServer,
  options: {
    slotPrefix: string;
    publication: string;
    table: string;
    count: number;
    insert: () => Promise<void>;
  },
): Promise<{ text: Streamed; binary: Streamed }> {
  const sources: ReplicationSource[] = [];
  try {
    for (const binary of [false, true]) {
      sources.push(
        await openSource(
          pg,
          `${options.slotPrefix}_${binary ? "binary" : "text"}`,
          options.publication,
          binary,
        ),
      );
    }
    await options.insert();
    const [text, binary] = await Promise.all(
      sources.map((source) => collectInserts(source, options.table, options.count)),
    );
    return { text: text!, binary: binary! };
  } finally {
    for (const source of sources) await source.close();
  }
}

/** The column's type OID in a relation. */
export function columnOid(relation: RelationMessage, name: string): number {
  const column = relation.columns.find((c) => c.name === name);
  assert.ok(column, `relation has no column "${name}"`);
  return column.typeOid;
}

/** A row without some columns (e.g. the reg* format probe). */
export function without(row: Row, ...names: string[]): Row {
  const out: Row = { ...row };
  for (const name of names) delete out[name];
  return out;
}

// ---------------------------------------------------------------------------------------------
// A non-C monetary locale

/** A locale compiled into a directory of its own: start a server with `LOCPATH=dir`. */
export interface CompiledLocale extends AsyncDisposable {
  dir: string;
  name: string;
}

/**
 * Compiles a locale named `de_DE.UTF-8` with de_DE's `LC_MONETARY` (`-1.234,56 €`) and POSIX's
 * `LC_CTYPE`, `LC_COLLATE`, `LC_NUMERIC`, `LC_TIME`, `LC_MESSAGES` (fast to compile: under a
 * second, where the real de_DE takes seconds) into a new world-readable temp directory, with
 * `localedef`. Every category is defined: PostgreSQL 18 reads lconv through
 * `newlocale(LC_ALL_MASK, …)`. Null when `localedef` or the glibc locale sources are missing.
 */
export async function compileMonetaryLocale(): Promise<CompiledLocale | null> {
  const sources = "/usr/share/i18n/locales";
  try {
    await Deno.stat(`${sources}/de_DE`);
    await Deno.stat(`${sources}/POSIX`);
  } catch {
    return null;
  }
  const dir = await Deno.makeTempDir({ prefix: "spillway-locale-" });
  const dispose = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    await Deno.chmod(dir, 0o755);
    const copy = (from: string, categories: string[]) =>
      categories.map((c) => `${c}\ncopy "${from}"\nEND ${c}\n`).join("");
    const definition = `${dir}/monetary.def`;
    await Deno.writeTextFile(
      definition,
      copy("POSIX", ["LC_CTYPE", "LC_COLLATE", "LC_NUMERIC", "LC_TIME", "LC_MESSAGES"]) +
        copy("de_DE", [
          "LC_MONETARY",
          "LC_PAPER",
          "LC_NAME",
          "LC_ADDRESS",
          "LC_TELEPHONE",
          "LC_MEASUREMENT",
          "LC_IDENTIFICATION",
        ]),
    );
    const name = "de_DE.UTF-8";
    const result = await new Deno.Command("localedef", {
      args: ["-i", definition, "-f", "UTF-8", `${dir}/${name}`],
      env: { I18NPATH: sources },
      stdout: "null",
      stderr: "null",
    }).output();
    if (result.code !== 0) throw new Error(`localedef exit ${result.code}`);
    // Readable by the server's OS user (LC_MESSAGES is a directory).
    const share = async (path: string): Promise<void> => {
      const isDirectory = (await Deno.stat(path)).isDirectory;
      await Deno.chmod(path, isDirectory ? 0o755 : 0o644);
      if (isDirectory) {
        for await (const entry of Deno.readDir(path)) await share(`${path}/${entry.name}`);
      }
    };
    await share(`${dir}/${name}`);
    return { dir, name, [Symbol.asyncDispose]: dispose };
  } catch {
    await dispose();
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The server's text: `col::text`

/**
 * Checks `value` (streamed) against `castText`, the server's `col::text`. For most types that
 * cast is the type's output function (I/O conversion), which is what pgoutput sends in text
 * mode, so the registry's text decoder must give the streamed value back exactly. A few types
 * have a cast function to text that is not their output function (`pg_cast`, castmethod `f`):
 *
 * - `bool`: `text(bool)` gives `true`/`false` (the output function gives `t`/`f`, the only
 *   spelling the decoder accepts): the cast text is `String(value)`.
 * - `bpchar`: `text(bpchar)` strips trailing blanks (pgoutput keeps the padding): decoding the
 *   cast text gives the value without trailing spaces.
 * - `inet`: `text(inet)` always writes the prefix length (`inet_out` leaves out `/32`,
 *   `/128`): the cast text is the value with the full-length prefix added when it had none.
 * - `xml`: binary-coercible to text, so the cast is the stored document, while `xml_out` (and
 *   `xml_send`) leave out a declaration that only gives `version="1.0"` and an encoding: the
 *   cast text without such a declaration is the value.
 * - `cidr`, `name`, `"char"`: cast functions too, but they give the output function's text
 *   (cidr always has a prefix; ASCII `"char"` only here), so decoding must match exactly.
 * - Domains use their base type's cast. Arrays, ranges and composites of these types use I/O
 *   conversion (`t`, padded `bpchar`, `inet` without `/32` inside), so they match exactly.
 */
export function checkCastText(
  registry: TypeRegistry,
  oid: number,
  value: PgValue,
  castText: string,
  what: string,
): void {
  const base = baseOf(registry, oid);
  switch (base) {
    case Oid.bool:
      assert.equal(castText, String(value), what);
      return;
    case Oid.bpchar:
      assert.equal(registry.decodeText(oid, castText), (value as string).replace(/ +$/, ""), what);
      return;
    case Oid.inet: {
      const v = value as string;
      const full = v.includes("/") ? v : `${v}/${v.includes(":") ? 128 : 32}`;
      assert.equal(castText, full, what);
      assert.equal(registry.decodeText(oid, castText), full, what);
      return;
    }
    case Oid.xml:
      assert.equal(
        castText.replace(/^<\?xml version="1\.0"( encoding="[^"]*")?\s*\?>/, ""),
        value,
        what,
      );
      return;
    default:
      assert.deepStrictEqual(registry.decodeText(oid, castText), value, what);
  }
}

/** The OID under any domains. */
export function baseOf(registry: TypeRegistry, oid: number): number {
  for (let depth = 0; depth < 32; depth++) {
    const info = registry.get(oid);
    if (info?.kind !== "domain") return oid;
    oid = info.baseOid!;
  }
  throw new Error(`domain nesting too deep at ${oid}`);
}

// ---------------------------------------------------------------------------------------------
// The server's JSON: `to_jsonb(col)::text`

/** A JSON number with its source text (`JSON.parse` reviver `context.source`). */
export class JsonNumber {
  constructor(readonly value: number, readonly source: string) {}
}

/** A parsed JSON value whose numbers are {@linkcode JsonNumber}s. */
export type JsonWithSource =
  | null
  | boolean
  | string
  | JsonNumber
  | JsonWithSource[]
  | { [key: string]: JsonWithSource };

/** `JSON.parse`, keeping every number's source text (exact `int8`/`numeric`). */
export function parseJsonWithSource(text: string): JsonWithSource {
  const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === "number" ? new JsonNumber(value, context!.source!) : value;
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
}

/** Plain JSON of a {@linkcode JsonWithSource} (numbers as `number`). */
export function plainJson(json: JsonWithSource): unknown {
  if (json instanceof JsonNumber) return json.value;
  if (Array.isArray(json)) return json.map(plainJson);
  if (json !== null && typeof json === "object") {
    return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, plainJson(v)]));
  }
  return json;
}

/** Scalar types whose TypeScript value is by definition their JSON value (finite numbers). */
const JSON_NATIVE = new Set<number>([
  Oid.bool,
  Oid.int2,
  Oid.int4,
  Oid.float4,
  Oid.float8,
  Oid.text,
  Oid.varchar,
]);

/**
 * True when `value` of type `oid` must equal `JSON.parse(to_jsonb(value)::text)` as is: `bool`,
 * `int2`, `int4`, `float4`/`float8` (finite and not `-0`: `to_jsonb` goes through `numeric`,
 * which has no `-0`, and writes NaN/±Infinity as strings), `text`, `varchar`, enums, and
 * arrays (lower bound 1), composites and domains made of these only.
 */
export function isJsonNative(registry: TypeRegistry, oid: number, value: PgValue): boolean {
  if (value === null) return true;
  const info = registry.get(oid);
  if (info === undefined) return false;
  switch (info.kind) {
    case "enum":
      return true;
    case "domain":
      return isJsonNative(registry, info.baseOid!, value);
    case "array": {
      if (!Array.isArray(value)) return false; // { lowerBounds, values }: to_jsonb drops bounds
      const all = (v: PgValue): boolean =>
        Array.isArray(v) ? v.every(all) : isJsonNative(registry, info.elementOid!, v);
      return value.every(all);
    }
    case "composite": {
      const record = value as Record<string, PgValue>;
      return info.fields!.every((f) => isJsonNative(registry, f.typeOid, record[f.name]!));
    }
    case "base":
      if (!JSON_NATIVE.has(oid)) return false;
      return typeof value !== "number" || (Number.isFinite(value) && !Object.is(value, -0));
    default:
      return false;
  }
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * Checks a typed value against `to_jsonb` of the same value (parsed with
 * {@linkcode parseJsonWithSource}), per type. `to_jsonb` turns `bool` into a JSON boolean;
 * `int2`/`int4`/`int8`/`float4`/`float8`/`numeric` into a JSON number (through `numeric`, so the
 * source text is exact); `date`/`timestamp`/`timestamptz` into an ISO-8601 ("XSD") string;
 * `json`/`jsonb` into the document; arrays (of any dimension, bounds dropped) into nested JSON
 * arrays of their elements; composites into objects keyed by field name (jsonb sorts keys); and
 * every other type (enums too) into a JSON string of its output function. So, per type:
 *
 * - `bool`, `int2`, `int4`, `text`, `varchar`, `bpchar` (padded, like the value), `name`,
 *   `"char"`, `uuid`, `jsonpath`, `xml`, `time`, `timetz`, `inet`, `cidr`, `macaddr`,
 *   `macaddr8`, `bit`, `varbit`, `tsvector`, `tsquery`, `pg_lsn`, `date` (the XSD form of a
 *   date is its ISO form, `BC` suffix and `infinity` included), enums: the JSON value is the
 *   value.
 * - `float4`, `float8`: finite non-zero-sign values: the JSON number is the value (`float4` is
 *   written with the session's `extra_float_digits=3`, i.e. shortest, which is how the decoder
 *   reads it); `-0` becomes `0`; NaN/±Infinity become the strings `"NaN"`, `"Infinity"`,
 *   `"-Infinity"`.
 * - `int8`, `xid8` (a string): `BigInt` of the JSON number's source (or string) is the value.
 * - `oid`, `xid`, `cid` (strings): `Number` of the JSON string is the value.
 * - `numeric`: finite: the JSON number's source text is the value exactly (jsonb keeps the
 *   numeric's scale); NaN/±Infinity: the JSON string is the value.
 * - `money`: a string in `cash_out`'s C-locale form (`"-$1,234.56"`): without `$` and `,` it is
 *   the value.
 * - `bytea`: the string `\x` + lower-case hex of the bytes (`bytea_output=hex`, pinned).
 * - `timestamp`: the value with its first space replaced by `T`.
 * - `timestamptz`: the same, and the offset `+00` (TimeZone=UTC, pinned) written `+00:00`.
 * - `json`, `jsonb`: `JSON.parse` of the value equals the JSON document (`to_jsonb(json)`
 *   keeps the last of duplicate keys, as `JSON.parse` does).
 * - `oidvector` (an array of `oid` strings), `int2vector` (numbers): element-wise as above.
 * - everything else with a JSON string (`interval`, geometric types, ranges, multiranges,
 *   `tid`, `pg_snapshot`, `txid_snapshot`, `aclitem`, `refcursor`): decoding that string with
 *   the registry's text decoder gives the value (the string is the output function's text).
 */
export function checkJson(
  registry: TypeRegistry,
  oid: number,
  value: PgValue,
  json: JsonWithSource,
  what: string,
): void {
  if (value === null) {
    assert.equal(json, null, what);
    return;
  }
  const info = registry.get(oid);
  assert.ok(info, `${what}: type ${oid} is registered`);
  switch (info.kind) {
    case "domain":
      return checkJson(registry, info.baseOid!, value, json, what);
    case "enum":
      assert.equal(json, value, what);
      return;
    case "array": {
      const values = Array.isArray(value)
        ? value
        : (value as { lowerBounds: number[]; values: PgValue[] }).values;
      checkArray(registry, info.elementOid!, values, json, what);
      return;
    }
    case "composite": {
      assert.ok(json !== null && typeof json === "object" && !Array.isArray(json), what);
      assert.ok(!(json instanceof JsonNumber), what);
      const record = value as Record<string, PgValue>;
      const names = info.fields!.map((f) => f.name);
      // jsonb orders object keys by length, then bytes: compare them as sets.
      assert.deepStrictEqual(
        Object.keys(json).sort(),
        [...names].sort(),
        `${what}: JSON keys are the fields`,
      );
      assert.deepStrictEqual(Object.keys(record), names, `${what}: value keys are the fields`);
      for (const field of info.fields!) {
        checkJson(
          registry,
          field.typeOid,
          record[field.name]!,
          json[field.name]!,
          `${what}.${field.name}`,
        );
      }
      return;
    }
    default:
      checkScalarJson(registry, oid, value, json, what);
  }
}

function checkArray(
  registry: TypeRegistry,
  elementOid: number,
  values: PgValue[],
  json: JsonWithSource,
  what: string,
): void {
  assert.ok(Array.isArray(json), `${what}: a JSON array`);
  assert.equal(json.length, values.length, `${what}: length`);
  values.forEach((v, i) => {
    const j = json[i]!;
    // A nested JSON array inside an array is a further dimension (element types whose value is
    // an array, like box or polygon, are JSON strings there).
    if (Array.isArray(j) && Array.isArray(v) && !registryValueIsArray(registry, elementOid)) {
      checkArray(registry, elementOid, v, j, `${what}[${i}]`);
    } else {
      checkJson(registry, elementOid, v, j, `${what}[${i}]`);
    }
  });
}

/** Element types whose TypeScript value is itself an array. */
function registryValueIsArray(registry: TypeRegistry, oid: number): boolean {
  const info = registry.get(baseOf(registry, oid));
  if (info?.kind === "multirange" || info?.kind === "array") return true;
  const arrayValued: number[] = [Oid.lseg, Oid.box, Oid.polygon, Oid.oidvector, Oid.int2vector];
  return arrayValued.includes(info?.oid ?? 0);
}

function checkScalarJson(
  registry: TypeRegistry,
  oid: number,
  value: PgValue,
  json: JsonWithSource,
  what: string,
): void {
  switch (oid) {
    case Oid.bool:
    case Oid.int2:
    case Oid.int4:
      assert.equal(plainJson(json), value, what);
      return;
    case Oid.float4:
    case Oid.float8: {
      const v = value as number;
      if (!Number.isFinite(v)) assert.equal(json, String(v), what);
      else if (Object.is(v, -0)) assert.equal(plainJson(json), 0, what);
      else assert.equal(plainJson(json), v, what);
      return;
    }
    case Oid.int8:
      assert.ok(json instanceof JsonNumber, what);
      assert.equal(BigInt(json.source), value, what);
      return;
    case Oid.xid8:
      assert.equal(BigInt(json as string), value, what);
      return;
    case Oid.oid:
    case Oid.xid:
    case Oid.cid:
      assert.equal(Number(json as string), value, what);
      return;
    case Oid.numeric:
      if (json instanceof JsonNumber) assert.equal(json.source, value, what);
      else assert.equal(json, value, what); // "NaN", "Infinity", "-Infinity"
      return;
    case Oid.money:
      assert.equal(typeof json, "string", what);
      assert.equal((json as string).replace(/[$,]/g, ""), value, what);
      return;
    case Oid.bytea:
      assert.equal(json, `\\x${hex(value as Uint8Array)}`, what);
      return;
    case Oid.timestamp:
      assert.equal(json, (value as string).replace(" ", "T"), what);
      return;
    case Oid.timestamptz: {
      const v = value as string;
      assert.equal(
        json,
        /^-?infinity$/.test(v) ? v : v.replace(" ", "T").replace(/\+00( BC)?$/, "+00:00$1"),
        what,
      );
      return;
    }
    case Oid.json:
    case Oid.jsonb:
      assert.deepStrictEqual(JSON.parse(value as string), plainJson(json), what);
      return;
    case Oid.oidvector:
      assert.deepStrictEqual((json as string[]).map(Number), value, what);
      return;
    case Oid.int2vector:
      assert.deepStrictEqual(plainJson(json), value, what);
      return;
    case Oid.text:
    case Oid.varchar:
    case Oid.bpchar:
    case Oid.name:
    case Oid.char:
    case Oid.uuid:
    case Oid.jsonpath:
    case Oid.xml:
    case Oid.time:
    case Oid.timetz:
    case Oid.inet:
    case Oid.cidr:
    case Oid.macaddr:
    case Oid.macaddr8:
    case Oid.bit:
    case Oid.varbit:
    case Oid.tsvector:
    case Oid.tsquery:
    case Oid.pg_lsn:
    case Oid.date:
      assert.equal(json, value, what);
      return;
    default:
      assert.equal(typeof json, "string", `${what}: a JSON string`);
      assert.deepStrictEqual(registry.decodeText(oid, json as string), value, what);
  }
}
