/**
 * The `tables` and `defaults` sections: table names and globs, their options, and
 * {@linkcode matchTable}, which picks the entry that applies to a table.
 *
 * @module
 */

import { extname } from "node:path";
import { isMap, type YAMLMap } from "npm:yaml@2.9.1";
import type {
  NamePattern,
  PipelineConfig,
  ResolvedTable,
  TableDefaults,
  TableEntry,
  TableOptions,
  ToastMode,
} from "./types.ts";
import {
  type Checker,
  childPath,
  closest,
  type Field,
  keyName,
  quote,
  quoteName,
  startOf,
} from "./_yaml.ts";
import {
  anyString,
  choice,
  filePath,
  integer,
  list,
  nullable,
  oneOrList,
  orVariable,
  type Reader,
  string,
} from "./_readers.ts";
import {
  type Fields,
  readSetKeys,
  sectionReader,
  sectionSchema,
  type SectionSpec,
} from "./_fields.ts";
import { PERMISSIONS } from "./sections.ts";

/**
 * Debezium's placeholder for values it did not receive: the default of
 * `toast_placeholder`.
 */
export const DEBEZIUM_UNAVAILABLE_VALUE = "__debezium_unavailable_value";

/** True when an entry matches every schema and table (`"*"`): the publication is then FOR ALL TABLES. */
export function publishesAllTables(config: PipelineConfig): boolean {
  return config.tables.some((entry) =>
    entry.schema.glob && entry.schema.name === "*" && entry.table.glob && entry.table.name === "*"
  );
}

/**
 * Finds the entry of `tables` that applies to a table and fills in its topic.
 *
 * An exact name wins over globs; among globs the one with the longest literal prefix
 * wins (`public.order_*` over `public.*` over `*.orders` and `*`), then the one with more
 * literal characters, then the one written first. Names are compared case-sensitively,
 * as PostgreSQL stores them. Returns `null` when no entry matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig } from "./load.ts";
 * import { matchTable } from "./tables.ts";
 * const config = parsePipelineConfig(
 *   [
 *     "source: { url: 'postgres://localhost/app', slot: s, publication: p }",
 *     "tables:",
 *     "  public.orders: { key: [id] }",
 *     "  '\"Sales\".*': { topic: 'sales.{table}' }",
 *     "  '*': {}",
 *     "sinks: [stdout: {}]",
 *   ].join("\n"),
 *   { file: "shop.yaml", env: {} },
 * );
 * assert.deepEqual(matchTable(config, "public", "orders")?.key, ["id"]);
 * assert.equal(matchTable(config, "Sales", "Order Items")?.topic, "sales.Order Items");
 * assert.equal(matchTable(config, "audit", "log")?.topic, "shop.audit.log");
 * ```
 */
export function matchTable(
  config: PipelineConfig,
  schema: string,
  table: string,
): ResolvedTable | null {
  let best: { entry: TableEntry; prefix: number; literal: number } | null = null;
  for (const entry of config.tables) {
    if (!entry.schema.glob && !entry.table.glob) {
      if (entry.schema.name === schema && entry.table.name === table) {
        return resolveTable(config, entry, { schema, table });
      }
      continue;
    }
    if (!matchesPart(entry.schema, schema) || !matchesPart(entry.table, table)) continue;
    const prefix = literalPrefix(entry);
    const literal = literalCount(entry);
    if (
      best === null || prefix > best.prefix || (prefix === best.prefix && literal > best.literal)
    ) {
      best = { entry, prefix, literal };
    }
  }
  return best === null ? null : resolveTable(config, best.entry, { schema, table });
}

/** One row of a routing table: a table or glob, its topic template and its key columns. */
export interface RouteRule {
  pattern: string;
  /** A topic template (`{prefix}`, `{schema}`, `{table}`); `null` keeps the entry's. */
  topic: string | null;
  /** Key columns; `null` keeps the entry's. */
  key: string[] | null;
}

/**
 * The topic and key the routing table's rules give a table (the most specific rule, as in
 * `tables`: an exact name over globs, then the longest literal prefix), or `null` when no rule
 * matches. Rules whose pattern does not parse are left out; `invalid` gets each of them.
 */
export function matchRoute(
  config: PipelineConfig,
  rules: readonly RouteRule[],
  schema: string,
  table: string,
  invalid?: (rule: RouteRule, problem: string) => void,
): { topic: string | null; key: string[] | null } | null {
  const entries: TableEntry[] = [];
  const byPattern = new Map<string, RouteRule>();
  for (const rule of rules) {
    const parsed = parseTableName(rule.pattern);
    if (typeof parsed === "string") {
      invalid?.(rule, `expected ${TABLE_NAME_EXPECTED}, found ${quoteName(rule.pattern)}${parsed}`);
      continue;
    }
    byPattern.set(rule.pattern, rule);
    entries.push({
      ...config.tables[0]!,
      pattern: rule.pattern,
      ...parsed,
      topic: rule.topic ?? "{prefix}.{schema}.{table}",
    });
  }
  const resolved = matchTable({ ...config, tables: entries }, schema, table);
  if (resolved === null) return null;
  const rule = byPattern.get(resolved.pattern)!;
  return { topic: rule.topic === null ? null : resolved.topic, key: rule.key };
}

// ---------------------------------------------------------------------------------------
// Reading the sections

const encoder = new TextEncoder();

const TABLES_EXPECTED =
  'a map of tables or globs to options, like public.orders: {} or "public.*": {}';
const TABLE_NAME_EXPECTED = "a table like schema.table or a glob like public.*";
const TOAST_MODES: readonly ToastMode[] = ["unchanged", "omit", "placeholder", "last_value"];
const PLACEHOLDERS = ["prefix", "schema", "table"];
const TRANSFORM_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

/** A name part: unquoted (lower case, globs allowed) or double-quoted (`""` for a quote). */
const NAME_PART = '(?:[a-z_*?][a-z0-9_$*?]*|"(?:[^"]|"")+")';

/** The keys of `tables`, for JSON Schema: `*`, or `schema.table` with each part a name part. */
const TABLE_NAME_PATTERN = `^(?:\\*|${NAME_PART}\\.${NAME_PART})$`;

const TOPIC_EXPECTED = "a topic like app.{schema}.{table}";
const topicText = string(TOPIC_EXPECTED);

const TOPIC: Reader<string> = {
  expected: TOPIC_EXPECTED,
  jsonSchema: orVariable({
    type: "string",
    pattern: `^(?:[^{}]|\\{(?:${PLACEHOLDERS.join("|")})\\})+$`,
  }),
  read: (checker, field) => {
    const value = topicText.read(checker, field);
    if (value === undefined) return undefined;
    for (const match of value.matchAll(/\{([^{}]*)\}/g)) {
      if (PLACEHOLDERS.includes(match[1]!)) continue;
      const hint = closest(match[1]!, PLACEHOLDERS);
      const didYouMean = hint === undefined ? "" : `; did you mean "{${hint}}"?`;
      return checker.fail(
        field,
        "placeholders {prefix}, {schema} or {table}",
        quote(match[0]) + didYouMean,
      );
    }
    if (/[{}]/.test(value.replace(/\{(?:prefix|schema|table)\}/g, ""))) {
      return checker.fail(field, "a topic with balanced braces around placeholders", quote(value));
    }
    return value;
  },
};

const TRANSFORM_EXPECTED = "a path to a transform module like transforms/orders.ts";
const transformFile = filePath(TRANSFORM_EXPECTED);

const TRANSFORM_FILE: Reader<string> = {
  expected: TRANSFORM_EXPECTED,
  jsonSchema: orVariable({
    type: "string",
    pattern: `\\.(?:${TRANSFORM_EXTENSIONS.map((extension) => extension.slice(1)).join("|")})$`,
  }),
  read: (checker, field) => {
    const path = transformFile.read(checker, field);
    if (path === undefined) return undefined;
    if (TRANSFORM_EXTENSIONS.includes(extname(path))) return path;
    return checker.fail(field, `a transform module ending in ${TRANSFORM_EXTENSIONS.join(", ")}`);
  },
};

const TRANSFORM_CHAIN_EXPECTED = `${TRANSFORM_EXPECTED}, or a list of them applied in order`;

/** One transform file, or a chain of them (`[a.ts, b.ts]`, applied in order). */
const TRANSFORM_CHAIN = oneOrList(TRANSFORM_FILE, TRANSFORM_CHAIN_EXPECTED);

const columnList = list(string("a column name"), "a list of column names like [id]");

const KEY_COLUMNS: Reader<string[]> = {
  expected: columnList.expected,
  jsonSchema: { ...columnList.jsonSchema, uniqueItems: true },
  read: (checker, field) => {
    const columns = columnList.read(checker, field);
    if (columns === undefined) return undefined;
    const twice = columns.find((column, index) => columns.indexOf(column) !== index);
    if (twice === undefined) return columns;
    return checker.fail(field, "each column once", `${quote(twice)} twice`);
  },
};

/** The options a table entry sets or takes from `defaults`, with their defaults. */
const TABLE_OPTIONS: Fields<TableOptions> = {
  topic: {
    key: "topic",
    reader: TOPIC,
    default: "{prefix}.{schema}.{table}",
    doc: "Topic of the table's changes, with {prefix}, {schema} and {table} placeholders.",
  },
  key: {
    key: "key",
    reader: nullable(KEY_COLUMNS),
    default: null,
    doc: "Key columns of each change; null for the table's replica identity (usually " +
      "the primary key).",
  },
  transform: {
    key: "transform",
    reader: nullable(TRANSFORM_CHAIN),
    default: null,
    doc: `Transform module (${
      TRANSFORM_EXTENSIONS.join(", ")
    }) relative to the pipeline file, or a list of them applied in order; null for none.`,
  },
  allow: {
    key: "allow",
    reader: nullable(sectionReader(PERMISSIONS)),
    default: null,
    doc: "What this table's transforms may read, reach and see (read, net and env " +
      "lists); null for transforms.allow.",
  },
  toast: {
    key: "toast",
    reader: choice(TOAST_MODES),
    default: "unchanged",
    doc: "An unchanged TOASTed column, which the server does not send: unchanged lists " +
      "it in unchanged; omit leaves it out; placeholder writes toast_placeholder (and " +
      "lists it); last_value fills in the last value seen for the same key.",
  },
  toastPlaceholder: {
    key: "toast_placeholder",
    reader: anyString,
    default: DEBEZIUM_UNAVAILABLE_VALUE,
    doc: "Value written for an unchanged TOASTed column when toast is placeholder.",
  },
  toastCacheSize: {
    key: "toast_cache_size",
    reader: integer(1),
    default: 10_000,
    doc: "Rows remembered per table when toast is last_value.",
  },
};

/** One entry of `tables`. */
const TABLE: SectionSpec<TableOptions> = {
  expected: "a map of table options, or {}",
  fields: TABLE_OPTIONS,
};

/** The `defaults` section; `topic_prefix` defaults to the pipeline name. */
export const DEFAULTS: SectionSpec<TableDefaults> = {
  expected: "a map of table options",
  fields: {
    ...TABLE_OPTIONS,
    topicPrefix: {
      key: "topic_prefix",
      reader: string("a topic prefix"),
      doc: "Value of {prefix} in topics. Default: the pipeline name.",
    },
  },
};

/** A table entry as read, before `defaults` fills in the options it does not set. */
export interface TableDraft extends Omit<TableEntry, keyof TableOptions> {
  options: Partial<TableOptions>;
}

/** The `tables` map, its entries not yet completed by {@linkcode withDefaults}. */
export const TABLES: Reader<TableDraft[]> = {
  expected: TABLES_EXPECTED,
  jsonSchema: {
    type: "object",
    minProperties: 1,
    patternProperties: {
      [TABLE_NAME_PATTERN]: sectionSchema(TABLE, { inherited: "Default: as in defaults." }),
    },
    additionalProperties: false,
  },
  read: (checker, field) => {
    if (!isMap(field.node)) return checker.fail(field, TABLES_EXPECTED);
    const pairs = (field.node as YAMLMap).items;
    if (pairs.length === 0) return checker.fail(field, TABLES_EXPECTED, "an empty map");
    const entries: TableDraft[] = [];
    const seen = new Map<string, number>();
    let ok = true;
    for (const pair of pairs) {
      const entry = readTableEntry(checker, { key: pair.key, value: pair.value }, seen);
      if (entry === undefined) ok = false;
      else entries.push(entry);
    }
    return ok ? entries : undefined;
  },
};

/** A table entry with the options it does not set taken from `defaults`. */
export function withDefaults(draft: TableDraft, defaults: TableDefaults): TableEntry {
  const { topicPrefix: _, ...options } = defaults;
  const { options: set, ...entry } = draft;
  return { ...entry, ...options, ...set };
}

function readTableEntry(
  checker: Checker,
  pair: { key: unknown; value: unknown },
  seen: Map<string, number>,
): TableDraft | undefined {
  const tables: Field = { node: pair.key, path: "tables", offset: startOf(pair.key) ?? 0 };
  const pattern = keyName(checker, pair.key, tables);
  if (pattern === undefined) return undefined;
  const parsed = parseTableName(pattern);
  if (typeof parsed === "string") {
    return checker.fail(tables, TABLE_NAME_EXPECTED, quoteName(pattern) + parsed);
  }
  const canonical = `${formatPart(parsed.schema)}.${formatPart(parsed.table)}`;
  const first = seen.get(canonical);
  if (first !== undefined) {
    const again = `${quoteName(pattern)}, the same as line ${checker.line(first)}`;
    return checker.fail(tables, "each table or glob once", again);
  }
  seen.set(canonical, tables.offset);
  const path = childPath("tables", pattern);
  const value = pair.value === null ? null : checker.deref(pair.value, path);
  if (value === undefined) return undefined;
  const field: Field = { node: value, path, offset: startOf(value) ?? tables.offset };
  const options = readSetKeys(checker, field, TABLE);
  const { line, col } = checker.lines.linePos(tables.offset);
  return { pattern, ...parsed, line, column: col, options };
}

const UNQUOTED = /^[a-z_*?][a-z0-9_$*?]*$/;

/**
 * Parses `schema.table`. Each part is an unquoted lower-case name (PostgreSQL folds
 * unquoted names to lower case), a glob (`*` and `?` in an unquoted part), or a
 * double-quoted name kept as written (`""` for a quote). Returns the parts, or the end of
 * a "found ..." message saying what is wrong.
 */
function parseTableName(text: string): { schema: NamePattern; table: NamePattern } | string {
  const parts: (NamePattern & { raw: string })[] = [];
  let index = 0;
  for (;;) {
    const part = text[index] === '"' ? quotedPart(text, index) : unquotedPart(text, index);
    if (typeof part === "string") return part;
    parts.push(part);
    index += part.raw.length;
    if (index >= text.length) break;
    if (text[index] !== ".") return "; expected a dot after a quoted name";
    index++;
    if (index >= text.length) return "; the table name is empty";
  }
  if (parts.some((part) => encoder.encode(part.name).length > 63)) {
    return "; PostgreSQL names are at most 63 bytes";
  }
  const [schema, table] = parts as [NamePattern & { raw: string }, NamePattern | undefined];
  if (table === undefined) {
    if (schema.name === "*") {
      return { schema: { name: "*", glob: true }, table: { name: "*", glob: true } };
    }
    return `; did you mean ${quote(`public.${schema.raw}`)}?`;
  }
  if (parts.length > 2) return '; quote names with dots, as in "my.schema".orders';
  return {
    schema: { name: schema.name, glob: schema.glob },
    table: { name: table.name, glob: table.glob },
  };
}

function quotedPart(text: string, start: number): (NamePattern & { raw: string }) | string {
  let name = "";
  let index = start + 1;
  for (;;) {
    const close = text.indexOf('"', index);
    if (close === -1) return "; a quoted name is missing its closing quote";
    name += text.slice(index, close);
    index = close + 1;
    if (text[index] !== '"') break;
    name += '"';
    index++;
  }
  if (name === "") return "; a quoted name is empty";
  return { name, glob: false, raw: text.slice(start, index) };
}

function unquotedPart(text: string, start: number): (NamePattern & { raw: string }) | string {
  const dot = text.indexOf(".", start);
  const raw = text.slice(start, dot === -1 ? text.length : dot);
  if (raw === "") return "; a name is empty";
  if (UNQUOTED.test(raw)) return { name: raw, glob: /[*?]/.test(raw), raw };
  if (/^[A-Za-z_*?][A-Za-z0-9_$*?]*$/.test(raw)) {
    const quoted = text.split(".").map((p) => /[A-Z]/.test(p) ? `"${p}"` : p).join(".");
    return `; unquoted names are lower case in PostgreSQL, so quote mixed-case ones: '${quoted}'`;
  }
  return '; quote names with spaces, dots or upper case, as in "Sales"."Order Items"';
}

function formatPart(part: NamePattern): string {
  if (part.glob || /^[a-z_][a-z0-9_$]*$/.test(part.name)) return part.name;
  return `"${part.name.replaceAll('"', '""')}"`;
}

// ---------------------------------------------------------------------------------------
// Table matching

const globs = new WeakMap<NamePattern, RegExp>();

function matchesPart(part: NamePattern, name: string): boolean {
  if (!part.glob) return part.name === name;
  let regex = globs.get(part);
  if (regex === undefined) {
    const source = [...part.name]
      .map((char) => char === "*" ? ".*" : char === "?" ? "." : char === "$" ? "\\$" : char)
      .join("");
    regex = new RegExp(`^${source}$`, "su");
    globs.set(part, regex);
  }
  return regex.test(name);
}

/** Characters before the first wildcard in `schema.table`. */
function literalPrefix(entry: TableEntry): number {
  const { schema, table } = entry;
  if (schema.glob) return schema.name.search(/[*?]/);
  return schema.name.length + 1 + (table.glob ? table.name.search(/[*?]/) : table.name.length);
}

function literalCount(entry: TableEntry): number {
  return (entry.schema.name + entry.table.name).replace(/[*?]/g, "").length;
}

function resolveTable(
  config: PipelineConfig,
  entry: TableEntry,
  name: { schema: string; table: string },
): ResolvedTable {
  const values: Record<string, string> = { prefix: config.defaults.topicPrefix, ...name };
  const topic = entry.topic.replace(/\{(prefix|schema|table)\}/g, (_, key: string) => values[key]!);
  return {
    schema: name.schema,
    table: name.table,
    pattern: entry.pattern,
    topic,
    key: entry.key,
    transform: entry.transform,
    allow: entry.allow,
    toast: entry.toast,
    toastPlaceholder: entry.toastPlaceholder,
    toastCacheSize: entry.toastCacheSize,
  };
}
