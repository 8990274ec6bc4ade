/**
 * The codec registry: type OID → decoder, for pgoutput column values in text (`'t'`) or
 * binary (`'b'`) format. Built-in types are preloaded; catalog types (enums, domains,
 * composites, ranges, their arrays, extension types) are added with
 * {@linkcode TypeRegistry.register}, typically from `loadTypeInfos` in `catalog.ts` for the
 * OIDs that {@linkcode TypeRegistry.missing} reports.
 *
 * Decoding never throws for an unknown OID: such values become
 * `{ type, text }` / `{ type, binary }`. Malformed bytes or text of a known type throw
 * `DecodeError`.
 *
 * @module
 */

import {
  BINARY_DECODERS,
  decodeArrayBinary,
  decodeCompositeBinary,
  decodeMultirangeBinary,
  decodeRangeBinary,
  decodeRecordBinary,
  ELEMENT_READERS,
  type ElementReader,
} from "./binary.ts";
import { decodeUtf8 } from "../_reader.ts";
import { BUILTIN_TYPES, Oid } from "./oids.ts";
import {
  parseArrayText,
  parseCompositeText,
  parseMultirangeText,
  parseRangeText,
  TEXT_DECODERS,
} from "./text.ts";
import type { BinaryValueDecoder, ColumnDecoder, PgValue, TextValueDecoder } from "./values.ts";

export type {
  BinaryValueDecoder,
  Box,
  Circle,
  ColumnDecoder,
  Line,
  LineSegment,
  Path,
  PgArrayWithBounds,
  PgComposite,
  PgInterval,
  PgRange,
  PgValue,
  Point,
  Polygon,
  TextValueDecoder,
  UnknownBinaryValue,
  UnknownTextValue,
} from "./values.ts";

/** What kind of type a {@linkcode TypeInfo} describes (`pg_type.typtype`, plus arrays). */
export type TypeKind = "base" | "enum" | "domain" | "composite" | "range" | "multirange" | "array";

/** One field of a composite type (`pg_attribute`, in `attnum` order, dropped ones left out). */
export interface TypeField {
  name: string;
  typeOid: number;
  /** `atttypmod`; -1 when none. */
  typeModifier: number;
}

/** A type as the catalog describes it. Which optional fields are set depends on `kind`. */
export interface TypeInfo {
  oid: number;
  /** Schema name (`pg_namespace.nspname`), e.g. `"public"` or `"pg_catalog"`. */
  namespace: string;
  /** `pg_type.typname` (array types start with `_`). */
  name: string;
  kind: TypeKind;
  /** `array`: the element type. */
  elementOid?: number;
  /** `domain`: the underlying type (itself possibly a domain or an array). */
  baseOid?: number;
  /** `domain`: `typtypmod`, the modifier the domain puts on its base type; -1 when none. */
  baseTypeModifier?: number;
  /** `composite`: the fields, in order. */
  fields?: TypeField[];
  /** `range`: the subtype (`pg_range.rngsubtype`). */
  subtypeOid?: number;
  /** `multirange`: its range type. */
  rangeOid?: number;
  /** `enum`: the labels in sort order (informational; any label decodes). */
  enumLabels?: string[];
  /** `typdelim`: separates this type's elements in array text. Default `,` (`box` uses `;`). */
  delimiter?: string;
}

/** The largest nesting of arrays, domains, ranges and composites the registry follows. */
const MAX_DEPTH = 32;

function dependencies(info: TypeInfo): number[] {
  switch (info.kind) {
    case "base":
    case "enum":
      return [];
    case "array":
      return [info.elementOid!];
    case "domain":
      return [info.baseOid!];
    case "composite":
      return info.fields!.map((f) => f.typeOid);
    case "range":
      return [info.subtypeOid!];
    case "multirange":
      return [info.rangeOid!];
    default: {
      const never: never = info.kind;
      throw new TypeError(`Cannot handle type kind "${never}"`);
    }
  }
}

/** A type's description as one string, so two can be compared (field order does not matter). */
function definitionKey(info: TypeInfo): string {
  return JSON.stringify([
    info.oid,
    info.namespace,
    info.name,
    info.kind,
    info.elementOid,
    info.baseOid,
    info.baseTypeModifier,
    info.subtypeOid,
    info.rangeOid,
    info.delimiter,
    info.enumLabels,
    info.fields?.map((f) => [f.name, f.typeOid, f.typeModifier]),
  ]);
}

function requireField(info: TypeInfo, field: keyof TypeInfo): void {
  if (info[field] === undefined) {
    throw new TypeError(
      `Cannot register type ${info.oid} "${info.name}": kind "${info.kind}" needs "${field}"`,
    );
  }
}

/**
 * Decoders for every type OID, with PostgreSQL's built-in types preloaded.
 *
 * The hot path: per relation, build one decoder per column once (when the Relation message
 * arrives), then each row costs one call per column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TypeRegistry } from "./registry.ts";
 * const registry = new TypeRegistry();
 * const columns = [{ typeOid: 23, typeModifier: -1 }, { typeOid: 1007, typeModifier: -1 }];
 * const decoders = columns.map((c) => registry.columnDecoder(c.typeOid, c.typeModifier));
 * assert.equal(decoders[0]!("42"), 42);
 * assert.deepEqual(decoders[1]!("{1,NULL,3}"), [1, null, 3]);
 * assert.deepEqual(decoders[0]!(new Uint8Array([0, 0, 0, 42])), 42);
 * ```
 */
export class TypeRegistry {
  #types = new Map<number, TypeInfo>();
  #text = new Map<number, TextValueDecoder>();
  #binary = new Map<number, BinaryValueDecoder>();
  #column = new Map<number, ColumnDecoder>();
  #generation = 0;
  /** Catalog types whose values did not fit their definition; see {@linkcode takeSuspects}. */
  #suspects = new Set<number>();

  constructor() {
    for (const builtin of BUILTIN_TYPES) {
      const info: TypeInfo = { ...builtin, namespace: "pg_catalog" };
      delete (info as { arrayOid?: number }).arrayOid;
      this.#types.set(builtin.oid, info);
      if (builtin.arrayOid !== 0) {
        this.#types.set(builtin.arrayOid, {
          oid: builtin.arrayOid,
          namespace: "pg_catalog",
          name: "_" + builtin.name,
          kind: "array",
          elementOid: builtin.oid,
        });
      }
    }
  }

  /**
   * Adds or replaces a type (usually read from the catalog). Decoders handed out before stay
   * as they were: build column decoders again after registering. Returns false, and changes
   * nothing, when the registry already holds this very description.
   */
  register(info: TypeInfo): boolean {
    switch (info.kind) {
      case "array":
        requireField(info, "elementOid");
        break;
      case "domain":
        requireField(info, "baseOid");
        break;
      case "composite":
        requireField(info, "fields");
        break;
      case "range":
        requireField(info, "subtypeOid");
        break;
      case "multirange":
        requireField(info, "rangeOid");
        break;
      case "base":
      case "enum":
        break;
      default: {
        const never: never = info.kind;
        throw new TypeError(`Cannot register type ${info.oid}: unknown kind "${never}"`);
      }
    }
    const known = this.#types.get(info.oid);
    if (known !== undefined && definitionKey(known) === definitionKey(info)) return false;
    this.#types.set(info.oid, info);
    this.#generation++;
    this.#text.clear();
    this.#binary.clear();
    this.#column.clear();
    return true;
  }

  /**
   * Counts the types {@linkcode register} added or changed, so caches built from this registry
   * can tell they are stale.
   */
  get generation(): number {
    return this.#generation;
  }

  /**
   * The catalog types whose values did not fit their registered description since the last
   * call, and forgets them: a composite value that could not be decoded (its fields differ
   * after `ALTER TYPE … ADD/DROP ATTRIBUTE`), an enum label not among the labels (`ADD VALUE`,
   * `RENAME VALUE`). Load them again from the catalog and register them. An enum label is
   * reported once per description.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TypeRegistry } from "./registry.ts";
   * const registry = new TypeRegistry();
   * registry.register({ oid: 16400, namespace: "public", name: "mood", kind: "enum", enumLabels: ["sad"] });
   * assert.equal(registry.decodeText(16400, "happy"), "happy");
   * assert.deepEqual(registry.takeSuspects(), [16400]);
   * assert.deepEqual(registry.takeSuspects(), []);
   * ```
   */
  takeSuspects(): number[] {
    const suspects = [...this.#suspects];
    this.#suspects.clear();
    return suspects;
  }

  /** True when {@linkcode takeSuspects} has something to report. */
  get hasSuspects(): boolean {
    return this.#suspects.size > 0;
  }

  /** The registered description of `oid`, if any. */
  get(oid: number): TypeInfo | undefined {
    return this.#types.get(oid);
  }

  /** True when `oid` is registered (built-in or from the catalog). */
  has(oid: number): boolean {
    return this.#types.has(oid);
  }

  /** The type's name, or `"oid:NNN"` when unknown. */
  typeName(oid: number): string {
    return this.#types.get(oid)?.name ?? `oid:${oid}`;
  }

  /**
   * The OIDs among `oids`, and among the types they depend on (array elements, domain bases,
   * composite fields, range subtypes, multirange ranges), that are not registered. Load these
   * from the catalog, register them, and ask again until the answer is empty.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TypeRegistry } from "./registry.ts";
   * const registry = new TypeRegistry();
   * assert.deepEqual(registry.missing([23, 16500]), [16500]);
   * registry.register({ oid: 16500, namespace: "public", name: "_mood", kind: "array", elementOid: 16501 });
   * assert.deepEqual(registry.missing([16500]), [16501]);
   * ```
   */
  missing(oids: Iterable<number>): number[] {
    const out: number[] = [];
    const seen = new Set<number>();
    const stack = [...oids];
    while (stack.length > 0) {
      const oid = stack.pop()!;
      if (seen.has(oid)) continue;
      seen.add(oid);
      const info = this.#types.get(oid);
      if (info === undefined) out.push(oid);
      else stack.push(...dependencies(info));
    }
    return out.sort((a, b) => a - b);
  }

  /**
   * A decoder for values of type `oid` in one format. `typeModifier` (the column's `atttypmod`)
   * does not change decoded values; it is accepted so callers can key caches per column.
   */
  decoder(oid: number, typeModifier: number, format: "text"): TextValueDecoder;
  decoder(oid: number, typeModifier: number, format: "binary"): BinaryValueDecoder;
  decoder(
    oid: number,
    typeModifier: number,
    format: "text" | "binary",
  ): TextValueDecoder | BinaryValueDecoder;
  decoder(
    oid: number,
    _typeModifier: number,
    format: "text" | "binary",
  ): TextValueDecoder | BinaryValueDecoder {
    return format === "text" ? this.#textDecoder(oid, 0) : this.#binaryDecoder(oid, 0);
  }

  /**
   * A decoder for a column of type `oid` that accepts either format: a string is text, a
   * `Uint8Array` is binary (pgoutput's binary mode still sends text for types without a
   * `send` function).
   */
  columnDecoder(oid: number, _typeModifier = -1): ColumnDecoder {
    let decoder = this.#column.get(oid);
    if (decoder === undefined) {
      const text = this.#textDecoder(oid, 0);
      const binary = this.#binaryDecoder(oid, 0);
      decoder = (raw) => typeof raw === "string" ? text(raw) : binary(raw);
      this.#column.set(oid, decoder);
    }
    return decoder;
  }

  /** Decodes one text value of type `oid` (convenience; cache {@linkcode decoder} instead). */
  decodeText(oid: number, text: string): PgValue {
    return this.#textDecoder(oid, 0)(text);
  }

  /** Decodes one binary value of type `oid` (convenience; cache {@linkcode decoder} instead). */
  decodeBinary(oid: number, bytes: Uint8Array): PgValue {
    return this.#binaryDecoder(oid, 0)(bytes);
  }

  #what(info: TypeInfo): string {
    if (info.kind === "array") {
      const element = this.#types.get(info.elementOid!);
      return `${element?.name ?? `oid:${info.elementOid}`}[] value`;
    }
    return `${info.name} value`;
  }

  #unknownText(oid: number): TextValueDecoder {
    const type = this.typeName(oid);
    return (text) => ({ type, text });
  }

  #unknownBinary(oid: number): BinaryValueDecoder {
    const type = this.typeName(oid);
    return (binary) => ({ type, binary });
  }

  #textDecoder(oid: number, depth: number): TextValueDecoder {
    let decoder = this.#text.get(oid);
    if (decoder === undefined) {
      decoder = this.#buildText(oid, depth);
      this.#text.set(oid, decoder);
    }
    return decoder;
  }

  #binaryDecoder(oid: number, depth: number): BinaryValueDecoder {
    let decoder = this.#binary.get(oid);
    if (decoder === undefined) {
      decoder = this.#buildBinary(oid, depth);
      this.#binary.set(oid, decoder);
    }
    return decoder;
  }

  /** The fast element reader of a built-in scalar, looking through domains. */
  #elementReader(oid: number): ElementReader | undefined {
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      const reader = ELEMENT_READERS.get(oid);
      if (reader !== undefined) return reader;
      const info = this.#types.get(oid);
      if (info?.kind !== "domain") return undefined;
      oid = info.baseOid!;
    }
    return undefined;
  }

  /** An enum's label as it is, reporting a label the description does not list as a suspect. */
  #enumLabel(info: TypeInfo): (label: string) => string {
    if (info.enumLabels === undefined) return (label) => label;
    const labels = new Set(info.enumLabels);
    return (label) => {
      if (!labels.has(label)) {
        labels.add(label);
        this.#suspects.add(info.oid);
      }
      return label;
    };
  }

  /** `decode`, reporting `oid` as a suspect when it throws (a composite that changed shape). */
  #suspectOnError<T>(oid: number, decode: (raw: T) => PgValue): (raw: T) => PgValue {
    return (raw) => {
      try {
        return decode(raw);
      } catch (error) {
        this.#suspects.add(oid);
        throw error;
      }
    };
  }

  #buildText(oid: number, depth: number): TextValueDecoder {
    const builtin = TEXT_DECODERS.get(oid);
    if (builtin !== undefined) return builtin;
    const info = this.#types.get(oid);
    if (info === undefined || depth > MAX_DEPTH) return this.#unknownText(oid);
    const what = this.#what(info);
    switch (info.kind) {
      case "base":
        return oid === Oid.record
          ? (text) => parseCompositeText(text, null, null, what)
          : this.#unknownText(oid);
      case "enum":
        return this.#enumLabel(info);
      case "domain":
        return this.#textDecoder(info.baseOid!, depth + 1);
      case "array": {
        const element = this.#textDecoder(info.elementOid!, depth + 1);
        const delimiter = this.#types.get(info.elementOid!)?.delimiter ?? ",";
        return (text) => parseArrayText(text, element, delimiter, what);
      }
      case "range": {
        const subtype = this.#textDecoder(info.subtypeOid!, depth + 1);
        return (text) => parseRangeText(text, subtype, what);
      }
      case "multirange": {
        const range = this.#types.get(info.rangeOid!);
        if (range?.kind !== "range") return this.#unknownText(oid);
        const subtype = this.#textDecoder(range.subtypeOid!, depth + 1);
        return (text) => parseMultirangeText(text, subtype, what);
      }
      case "composite": {
        const fields = info.fields!;
        const names = fields.map((f) => f.name);
        const decoders = fields.map((f) => this.#textDecoder(f.typeOid, depth + 1));
        return this.#suspectOnError(oid, (text) => parseCompositeText(text, names, decoders, what));
      }
      default: {
        const never: never = info.kind;
        return this.#unknownText(never);
      }
    }
  }

  #buildBinary(oid: number, depth: number): BinaryValueDecoder {
    const builtin = BINARY_DECODERS.get(oid);
    if (builtin !== undefined) return builtin;
    const info = this.#types.get(oid);
    if (info === undefined || depth > MAX_DEPTH) return this.#unknownBinary(oid);
    const what = this.#what(info);
    switch (info.kind) {
      case "base":
        if (oid === Oid.record) {
          return (bytes) =>
            decodeRecordBinary(bytes, (fieldOid) => this.#binaryDecoder(fieldOid, depth + 1), what);
        }
        return this.#unknownBinary(oid);
      case "enum": {
        const label = this.#enumLabel(info);
        return (bytes) => label(decodeUtf8(bytes, 0, bytes.byteLength));
      }
      case "domain":
        return this.#binaryDecoder(info.baseOid!, depth + 1);
      case "array": {
        const element = this.#binaryDecoder(info.elementOid!, depth + 1);
        const reader = this.#elementReader(info.elementOid!);
        return (bytes) => decodeArrayBinary(bytes, element, what, reader);
      }
      case "range": {
        const subtype = this.#binaryDecoder(info.subtypeOid!, depth + 1);
        return (bytes) => decodeRangeBinary(bytes, subtype, what);
      }
      case "multirange": {
        const range = this.#types.get(info.rangeOid!);
        if (range?.kind !== "range") return this.#unknownBinary(oid);
        const subtype = this.#binaryDecoder(range.subtypeOid!, depth + 1);
        return (bytes) => decodeMultirangeBinary(bytes, subtype, what);
      }
      case "composite": {
        const fields = info.fields!;
        const names = fields.map((f) => f.name);
        const decoders = fields.map((f) => this.#binaryDecoder(f.typeOid, depth + 1));
        const oids = fields.map((f) => f.typeOid);
        return this.#suspectOnError(
          oid,
          (bytes) => decodeCompositeBinary(bytes, names, decoders, what, oids),
        );
      }
      default: {
        const never: never = info.kind;
        return this.#unknownBinary(never);
      }
    }
  }
}
