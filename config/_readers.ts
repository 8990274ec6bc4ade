/**
 * Readers of one kind of value, as small data objects: what a problem says was expected,
 * the value's JSON Schema, how to read it from the YAML tree, and how a read value is
 * written back (for the schema's defaults). The model is the YAML types of denoland/std
 * (`yaml/_type/*.ts`). Each `read` reports its problem with the field's path and
 * position and returns `undefined`. Private to `config/`.
 *
 * @module
 */

import { resolve } from "node:path";
import { isScalar, isSeq, type YAMLSeq } from "npm:yaml@2.9.1";
import {
  DURATION_PATTERN,
  formatDuration,
  formatSize,
  parseDuration,
  parseSize,
  SIZE_PATTERN,
} from "./units.ts";
import {
  childPath,
  closest,
  describe,
  isNull,
  quote,
  type Read,
  type ScalarValue,
  startOf,
  typePlain,
} from "./_yaml.ts";

// ---------------------------------------------------------------------------------------
// Readers as data

/** A JSON Schema type name. */
export type JsonType = "string" | "number" | "integer" | "boolean" | "null" | "object" | "array";

/** The part of JSON Schema (draft-07) that the pipeline schema uses. */
export interface JsonSchema {
  $schema?: string;
  $id?: string;
  title?: string;
  description?: string;
  default?: unknown;
  $ref?: string;
  definitions?: Record<string, JsonSchema>;
  type?: JsonType | JsonType[];
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  minProperties?: number;
  items?: JsonSchema;
  minItems?: number;
  uniqueItems?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

/** How one kind of value is read, and what it looks like in the file. */
export interface Reader<T> {
  /** What a problem says was expected, e.g. `a duration like 10s or 200ms`. */
  readonly expected: string;
  /** The value as written in the file, in JSON Schema. */
  readonly jsonSchema: JsonSchema;
  /** Reads the value, or reports a problem and returns `undefined`. */
  readonly read: Read<T>;
  /** A read value as it would be written in the file (default: as it is). */
  represent?(value: T): unknown;
}

/** Where the schema keeps what a `${VAR}` value looks like. */
export const VARIABLE_DEFINITION = "variable";

/** A string holding `${NAME}` or `${NAME:-default}`, substituted before it is read. */
export const VARIABLE_SCHEMA: JsonSchema = {
  description: "A value with ${NAME} or ${NAME:-default}, replaced from the environment " +
    "before it is read, so it may give a number, a boolean or null",
  type: "string",
  pattern: "\\$\\{",
};

const VARIABLE_REF: JsonSchema = { $ref: `#/definitions/${VARIABLE_DEFINITION}` };

/** The alternatives of a schema: its `anyOf`, or the schema itself. */
function alternatives(schema: JsonSchema): JsonSchema[] {
  return schema.anyOf ?? [schema];
}

/** A schema that also takes any of `more`, each alternative once. */
export function anyOf(schema: JsonSchema, ...more: JsonSchema[]): JsonSchema {
  const all: JsonSchema[] = [];
  const seen = new Set<string>();
  for (const alternative of [schema, ...more].flatMap(alternatives)) {
    const key = JSON.stringify(alternative);
    if (seen.has(key)) continue;
    seen.add(key);
    all.push(alternative);
  }
  return all.length === 1 ? all[0]! : { anyOf: all };
}

/** A scalar's schema, widened to the `${VAR}` strings that are substituted first. */
export function orVariable(schema: JsonSchema): JsonSchema {
  return anyOf(schema, VARIABLE_REF);
}

// ---------------------------------------------------------------------------------------
// Readers of one value

/** ` (a string; write 5 without quotes)` when a quoted value would fit unquoted. */
export function unquotedHint(value: ScalarValue, fits: (typed: ScalarValue) => boolean): string {
  if (typeof value !== "string") return "";
  const typed = typePlain(value);
  return typed !== value && fits(typed) ? ` (a string; write ${value} without quotes)` : "";
}

/**
 * A string that is not empty. `check` is a pattern (which the schema repeats) or a
 * function (whose limits `schema` states, as far as JSON Schema can).
 */
export function string(
  expected = "a string",
  check?: RegExp | ((value: string) => boolean),
  schema: JsonSchema = {},
): Reader<string> {
  const test = check instanceof RegExp ? (value: string) => check.test(value) : check;
  const base: JsonSchema = check instanceof RegExp
    ? { type: "string", pattern: check.source, ...schema }
    : { type: "string", minLength: 1, ...schema };
  return {
    expected,
    jsonSchema: check === undefined ? base : orVariable(base),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.text ?? scalar.value;
      if (typeof value !== "string" || value === "" || (test !== undefined && !test(value))) {
        return checker.fail(field, expected, describe(field.node, value));
      }
      return value;
    },
  };
}

/** Any string, the empty one included. */
export const anyString: Reader<string> = {
  expected: "a string",
  jsonSchema: { type: "string" },
  read: (checker, field) => {
    const scalar = checker.scalar(field, "a string");
    if (scalar === undefined) return undefined;
    const value = scalar.text ?? scalar.value;
    if (typeof value === "string") return value;
    return checker.fail(field, "a string", describe(field.node, value));
  },
};

/** A secret: a problem names the value's type but never prints it. */
export function secret(expected: string): Reader<string> {
  return {
    expected,
    jsonSchema: { type: "string", minLength: 1 },
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.text ?? scalar.value;
      if (typeof value === "string" && value !== "") return value;
      const found = typeof value === "string" || value === null
        ? describe(field.node, value)
        : `a ${typeof value}`;
      return checker.fail(field, expected, found);
    },
  };
}

export function integer(min: number): Reader<number> {
  const expected = `an integer of at least ${min}`;
  const fits = (v: ScalarValue) => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
  return {
    expected,
    jsonSchema: orVariable({ type: "integer", minimum: min }),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.value;
      if (typeof value === "number" && fits(value)) return value;
      return checker.fail(field, expected, describe(field.node, value) + unquotedHint(value, fits));
    },
  };
}

/** A finite number within `bounds`. */
export function number(
  expected: string,
  bounds: { exclusiveMinimum?: number; maximum?: number },
): Reader<number> {
  const { exclusiveMinimum = -Infinity, maximum = Infinity } = bounds;
  const fits = (v: ScalarValue) =>
    typeof v === "number" && Number.isFinite(v) && v > exclusiveMinimum && v <= maximum;
  return {
    expected,
    jsonSchema: orVariable({ type: "number", ...bounds }),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.value;
      if (typeof value === "number" && fits(value)) return value;
      return checker.fail(field, expected, describe(field.node, value) + unquotedHint(value, fits));
    },
  };
}

export const boolean: Reader<boolean> = {
  expected: "true or false",
  jsonSchema: orVariable({ type: "boolean" }),
  read: (checker, field) => {
    const expected = "true or false";
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (typeof value === "boolean") return value;
    // YAML 1.1 booleans are plain strings in YAML 1.2.
    const yaml11 = typeof value === "string" && /^(?:y|yes|n|no|on|off)$/i.test(value)
      ? " (a string in YAML 1.2; write true or false)"
      : "";
    const found = describe(field.node, value) + yaml11 +
      unquotedHint(value, (typed) => typeof typed === "boolean");
    return checker.fail(field, expected, found);
  },
};

/** One of a fixed set of values; `booleans` maps `false` and `true` onto two of them. */
export function choice<T extends string | number>(
  choices: readonly T[],
  booleans?: { false: T; true: T },
): Reader<T> {
  const shown = choices.map((choice) => typeof choice === "string" ? quote(choice) : choice);
  const expected = `one of ${shown.join(", ")}`;
  const values: unknown[] = booleans === undefined ? [...choices] : [...choices, false, true];
  return {
    expected,
    jsonSchema: orVariable({ enum: values }),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.value;
      if (booleans !== undefined && typeof value === "boolean") {
        return value ? booleans.true : booleans.false;
      }
      const found = choices.find((choice) => choice === value);
      if (found !== undefined) return found;
      const words = choices.filter((choice): choice is T & string => typeof choice === "string");
      const hint = typeof value === "string" ? closest(value, words) : undefined;
      const didYouMean = hint === undefined ? "" : `; did you mean ${quote(hint)}?`;
      const unquoted = unquotedHint(value, (typed) => choices.some((choice) => choice === typed));
      return checker.fail(field, expected, describe(field.node, value) + unquoted + didYouMean);
    },
  };
}

/** A duration in ms; with `off`, also `0`, `off` or `false` for 0. */
export function duration(options: { off?: boolean } = {}): Reader<number> {
  const expected = options.off
    ? "a duration like 10s or 200ms, or 0 or off"
    : "a duration like 10s or 200ms";
  const written: JsonSchema[] = [
    { type: "string", pattern: DURATION_PATTERN },
    { type: "integer", minimum: options.off ? 0 : 1 },
  ];
  if (options.off) written.push({ enum: ["off", false] });
  return {
    expected,
    jsonSchema: orVariable({ anyOf: written }),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.value;
      if (options.off && (value === "off" || value === false)) return 0;
      const ms = typeof value === "string" || typeof value === "number"
        ? parseDuration(value)
        : undefined;
      if (ms === undefined || (ms === 0 && !options.off)) {
        return checker.fail(field, expected, describe(field.node, value));
      }
      return ms;
    },
    represent: (ms) => options.off && ms === 0 ? "off" : formatDuration(ms),
  };
}

/** A size in bytes above 0; with `off`, also `0`, `off`, `false` or `null` for `null`. */
export function size(options: { off: true }): Reader<number | null>;
export function size(options?: { off?: false }): Reader<number>;
export function size(options: { off?: boolean } = {}): Reader<number | null> {
  const expected = options.off ? "a size like 100MB, or 0 or off" : "a size like 100MB";
  const written: JsonSchema[] = [
    { type: "string", pattern: SIZE_PATTERN },
    { type: "integer", minimum: options.off ? 0 : 1 },
  ];
  if (options.off) written.push({ enum: ["off", false, null] });
  return {
    expected,
    jsonSchema: orVariable({ anyOf: written }),
    read: (checker, field) => {
      const scalar = checker.scalar(field, expected);
      if (scalar === undefined) return undefined;
      const value = scalar.value;
      if (options.off && (value === "off" || value === false || value === null || value === 0)) {
        return null;
      }
      const bytes = typeof value === "string" || typeof value === "number"
        ? parseSize(value)
        : undefined;
      if (bytes === undefined || bytes === 0) {
        return checker.fail(field, expected, describe(field.node, value));
      }
      return bytes;
    },
    represent: (bytes) => bytes === null ? null : formatSize(bytes),
  };
}

/** `null` for `null` or nothing, otherwise what `reader` reads. */
export function nullable<T>(reader: Reader<T>): Reader<T | null> {
  return {
    expected: reader.expected,
    jsonSchema: anyOf(reader.jsonSchema, { type: "null" }),
    read: (checker, field) => {
      if (isNull(field.node)) return null;
      if (isScalar(field.node)) {
        const scalar = checker.scalar(field, "a value"); // `${VAR:-}` can give null too
        if (scalar === undefined) return undefined;
        if (scalar.value === null) return null;
      }
      return reader.read(checker, field);
    },
    represent: (value) => value === null ? null : represent(reader, value),
  };
}

/** A path, resolved against the pipeline file's directory. */
export function filePath(expected: string): Reader<string> {
  const text = string(expected);
  return {
    expected,
    jsonSchema: text.jsonSchema,
    read: (checker, field) => {
      const value = text.read(checker, field);
      return value === undefined ? undefined : resolve(checker.baseDir, value);
    },
  };
}

/** A list of at least one item; with `empty`, also `[]`. */
export function list<T>(
  item: Reader<T>,
  expected: string,
  options: { empty?: boolean } = {},
): Reader<T[]> {
  return {
    expected,
    jsonSchema: options.empty
      ? { type: "array", items: item.jsonSchema }
      : { type: "array", minItems: 1, items: item.jsonSchema },
    read: (checker, field) => {
      const node = field.node;
      if (!isSeq(node)) return checker.fail(field, expected);
      const items = (node as YAMLSeq).items;
      if (items.length === 0) {
        return options.empty ? [] : checker.fail(field, expected, "an empty list");
      }
      const values: T[] = [];
      let ok = true;
      items.forEach((raw, index) => {
        const path = childPath(field.path, index);
        const resolved = checker.deref(raw, path);
        const value = resolved === undefined ? undefined : item.read(checker, {
          node: resolved,
          path,
          offset: startOf(resolved) ?? field.offset,
        });
        if (value === undefined) ok = false;
        else values.push(value);
      });
      return ok ? values : undefined;
    },
    represent: (values) => values.map((value) => represent(item, value)),
  };
}

/** One value or a list of at least one; read as a list either way. */
export function oneOrList<T>(item: Reader<T>, expected: string): Reader<T[]> {
  const many = list(item, expected);
  return {
    expected,
    jsonSchema: anyOf(item.jsonSchema, many.jsonSchema),
    read: (checker, field) => {
      if (isSeq(field.node)) return many.read(checker, field);
      const one = item.read(checker, field);
      return one === undefined ? undefined : [one];
    },
    represent: (values) =>
      values.length === 1 ? represent(item, values[0]!) : represent(many, values),
  };
}

/** A read value as it would be written in the file. */
export function represent<T>(reader: Reader<T>, value: T): unknown {
  return reader.represent === undefined ? value : reader.represent(value);
}
