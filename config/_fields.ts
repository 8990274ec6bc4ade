/**
 * Field tables: each key of a section declared once, with its reader, its default and
 * its doc. The keys a map allows, the defaults the parser fills in and the JSON Schema
 * all come from these tables. Private to `config/`.
 *
 * @module
 */

import { type Checker, type Field, Section } from "./_yaml.ts";
import { type JsonSchema, type Reader, represent } from "./_readers.ts";

/** One key of a section. */
export interface FieldSpec<T> {
  /** The key as written in the file, e.g. `status_interval`. */
  readonly key: string;
  readonly reader: Reader<T>;
  /** What the key means, for the schema's `description`. */
  readonly doc: string;
  /**
   * The value when the key is absent or its value is wrong. A key with neither `default`
   * nor `required` gets its default from the code that reads it (see `base` of
   * {@linkcode readSection}), since it depends on other keys.
   */
  readonly default?: T;
  /** Set for a required key: what a problem says was expected when it is missing. */
  readonly required?: string;
}

/** The keys of a map, in the order they are read and listed in messages. */
export type Fields<T> = { readonly [K in keyof T]-?: FieldSpec<T[K]> };

/** A map of known keys, read into a `T`. */
export interface SectionSpec<T> {
  /** What a problem says was expected when the value is not a map. */
  readonly expected: string;
  readonly fields: Fields<T>;
  /**
   * Checks between keys, once all were read. A required key that is missing or wrong is
   * absent from `value` (and already reported).
   */
  readonly check?: (checker: Checker, section: Section, value: Partial<T>) => void;
}

/** The fields of a spec with their property names, in declaration order. */
function fieldsOf<T>(spec: SectionSpec<T>): [keyof T, FieldSpec<T[keyof T]>][] {
  return Object.entries(spec.fields) as [keyof T, FieldSpec<T[keyof T]>][];
}

const shapes = new WeakMap<object, { keys: string[]; expected: string }>();

/** The keys a map of this spec allows, and what it is expected to be. */
export function shapeOf<T>(spec: SectionSpec<T>): { keys: string[]; expected: string } {
  let shape = shapes.get(spec);
  if (shape === undefined) {
    shape = { keys: fieldsOf(spec).map(([, field]) => field.key), expected: spec.expected };
    shapes.set(spec, shape);
  }
  return shape;
}

/** A default for one parse: objects are copied, so no two configs share one. */
function fresh<T>(value: T): T {
  return typeof value === "object" && value !== null ? structuredClone(value) : value;
}

/**
 * Reads an optional key of `section`: its value, or its default (or `base.default`) when
 * it is absent or wrong.
 */
export function readOptional<T>(section: Section, field: FieldSpec<T>, base?: { default: T }): T {
  if (field.required !== undefined) {
    throw new Error(`Cannot default "${field.key}": it is required`);
  }
  if (base !== undefined) return section.read(field.key, field.reader.read, fresh(base.default));
  if (!("default" in field)) {
    throw new Error(`Cannot read "${field.key}": it has no default and none was given`);
  }
  return section.read(field.key, field.reader.read, fresh(field.default as T));
}

/** Reads a required key of `section`: `undefined` when it is missing or wrong (reported). */
export function readRequired<T>(section: Section, field: FieldSpec<T>): T | undefined {
  if (field.required === undefined) throw new Error(`Cannot require "${field.key}"`);
  return section.required(field.key, field.reader.read, field.required);
}

/**
 * Reads a map by its spec: every key, defaults filled in (`base` gives or overrides
 * some), then the spec's check. `undefined` when a required key is missing or wrong.
 * An absent map (a field without a node) gives the defaults.
 */
export function readSection<T>(
  checker: Checker,
  field: Field,
  spec: SectionSpec<T>,
  base: Partial<T> = {},
): T | undefined {
  const section = new Section(checker, field, shapeOf(spec));
  const value: Partial<T> = {};
  let complete = true;
  for (const [name, fieldSpec] of fieldsOf(spec)) {
    const given = name in base ? { default: base[name] as T[keyof T] } : undefined;
    const read = fieldSpec.required === undefined
      ? readOptional(section, fieldSpec, given)
      : readRequired(section, fieldSpec);
    if (read === undefined) complete = false;
    else value[name] = read;
  }
  spec.check?.(checker, section, value);
  return complete ? value as T : undefined;
}

/**
 * Reads only the keys a map sets (and that read well), for entries whose defaults come
 * from elsewhere. Required keys and checks do not apply.
 */
export function readSetKeys<T>(checker: Checker, field: Field, spec: SectionSpec<T>): Partial<T> {
  const section = new Section(checker, field, shapeOf(spec));
  const value: Partial<T> = {};
  for (const [name, fieldSpec] of fieldsOf(spec)) {
    const keyField = section.get(fieldSpec.key);
    const read = keyField === undefined ? undefined : fieldSpec.reader.read(checker, keyField);
    if (read !== undefined) value[name] = read;
  }
  return value;
}

/** Every key's default: the value of an empty map. */
export function defaultsOf<T>(spec: SectionSpec<T>): T {
  const value: Partial<T> = {};
  for (const [name, field] of fieldsOf(spec)) {
    if (!("default" in field)) throw new Error(`Cannot default "${field.key}": it has none`);
    value[name] = field.default;
  }
  return value as T;
}

/** A map of this spec as a reader, for a key whose value is the map. */
export function sectionReader<T>(spec: SectionSpec<T>): Reader<T> {
  return {
    expected: spec.expected,
    jsonSchema: sectionSchema(spec),
    read: (checker, field) => readSection(checker, field, spec),
    represent: (value) => {
      const written: Record<string, unknown> = {};
      for (const [name, field] of fieldsOf(spec)) {
        const shown = represent(field.reader, value[name]);
        if (shown !== undefined) written[field.key] = shown;
      }
      return written;
    },
  };
}

/**
 * A map of this spec in JSON Schema: its keys with their docs and defaults, the required
 * ones, and no others. Without required keys, `null` (an empty map) is allowed too. With
 * `inherited`, defaults are left out and `inherited` ends each description.
 */
export function sectionSchema<T>(
  spec: SectionSpec<T>,
  options: { inherited?: string } = {},
): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [, field] of fieldsOf(spec)) {
    properties[field.key] = options.inherited === undefined
      ? fieldSchema(field)
      : { description: `${field.doc} ${options.inherited}`, ...field.reader.jsonSchema };
    if (field.required !== undefined) required.push(field.key);
  }
  const schema: JsonSchema = {
    type: required.length === 0 ? ["object", "null"] : "object",
    properties,
  };
  if (required.length > 0) schema.required = required;
  schema.additionalProperties = false;
  return schema;
}

/** One key in JSON Schema: its doc, the reader's schema and the default as written. */
export function fieldSchema<T>(field: FieldSpec<T>): JsonSchema {
  const schema: JsonSchema = { description: field.doc, ...field.reader.jsonSchema };
  if ("default" in field) {
    const shown = represent(field.reader, field.default as T);
    if (shown !== undefined) schema.default = shown;
  }
  return schema;
}
