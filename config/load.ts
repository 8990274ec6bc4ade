/**
 * Parsing and loading a pipeline file: the YAML document, its top level, and YAML syntax
 * errors in the same grammar as the other problems.
 *
 * @module
 */

import { basename, dirname, extname, resolve } from "node:path";
import { isMap, LineCounter } from "npm:yaml@2.9.1";
import { ConfigError, errorMessage } from "../errors.ts";
import {
  type ParseOptions,
  type PipelineConfig,
  PipelineConfigError,
  type RoutingConfig,
} from "./types.ts";
import { Checker, describe, type Field, isNull, quote, Section, startOf } from "./_yaml.ts";
import { nullable, type Reader, string } from "./_readers.ts";
import {
  defaultsOf,
  readOptional,
  readRequired,
  readSection,
  sectionReader,
  sectionSchema,
  type SectionSpec,
  shapeOf,
} from "./_fields.ts";
import { SOURCE } from "./source.ts";
import { DEFAULTS, type TableDraft, TABLES, withDefaults } from "./tables.ts";
import { SINKS } from "./sinks.ts";
import { DEFAULT_HTTP, HTTP, LOG, QUEUE, SPILL, TRANSFORMS } from "./sections.ts";

// ---------------------------------------------------------------------------------------
// Public functions

/**
 * Parses and validates a pipeline file's text.
 *
 * Throws a {@linkcode PipelineConfigError} (a `ConfigError`) listing every problem.
 * The YAML library reads the `LOG_TOKENS` and `LOG_STREAM` environment variables, so
 * without `--allow-env` Deno asks for them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig } from "./load.ts";
 * const config = parsePipelineConfig(
 *   [
 *     "source:",
 *     "  url: postgres://replicator:${PGPASSWORD}@localhost:5432/app",
 *     "  slot: orders_cdc",
 *     "  publication: orders_pub",
 *     "tables:",
 *     '  "public.*": {}',
 *     "sinks:",
 *     "  - stdout: { format: json }",
 *   ].join("\n"),
 *   { file: "/etc/spillway/orders.yaml", env: { PGPASSWORD: "secret" } },
 * );
 * assert.equal(config.name, "orders");
 * assert.equal(config.source.url, "postgres://replicator:secret@localhost:5432/app");
 * assert.equal(config.source.heartbeatMs, 10_000);
 * assert.deepEqual(config.sinks, [{ type: "stdout", format: "json" }]);
 *
 * assert.throws(
 *   () => parsePipelineConfig("source: {}\ntables: {}\nsinks: []\nqueu: {}\n", { file: "p.yaml" }),
 *   (error: Error) =>
 *     error.message.split("\n").includes('p.yaml:4:1: unknown key "queu" at the top level; did you mean "queue"?'),
 * );
 * ```
 */
export function parsePipelineConfig(text: string, options: ParseOptions): PipelineConfig {
  const baseDir = resolve(options.baseDir ?? dirname(resolve(options.file)));
  const checker = new Checker(text, { lines: new LineCounter(), baseDir, env: options.env });
  let unexpected = false;
  for (const error of [...checker.doc.errors, ...checker.doc.warnings]) {
    // After one unexpected token the parser reports most of what follows; one is enough.
    if (error.code === "UNEXPECTED_TOKEN" && unexpected) continue;
    unexpected ||= error.code === "UNEXPECTED_TOKEN";
    checker.report(error.pos[0], `invalid YAML: ${syntaxMessage(error.code, error.message)}`);
  }
  // Schema checks on a tree the YAML parser could not read would only add noise.
  const config = checker.failed ? undefined : readPipeline(checker, options.file);
  if (config === undefined || checker.failed) {
    throw new PipelineConfigError(options.file, checker.problems());
  }
  return config;
}

/**
 * Reads and parses a pipeline file. Relative paths in it resolve against its directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "../errors.ts";
 * import { loadPipelineConfig } from "./load.ts";
 * await assert.rejects(loadPipelineConfig("no/such/pipeline.yaml"), ConfigError);
 * ```
 */
export async function loadPipelineConfig(
  path: string,
  options: { env?: Record<string, string | undefined> } = {},
): Promise<PipelineConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `Cannot load pipeline "${path}": file not found (looked in "${resolve(path)}")`,
        { cause: error },
      );
    }
    const detail = errorMessage(error);
    throw new ConfigError(`Cannot load pipeline "${path}": ${detail}`, { cause: error });
  }
  return parsePipelineConfig(text, {
    file: path,
    env: options.env,
    baseDir: dirname(resolve(path)),
  });
}

// ---------------------------------------------------------------------------------------
// The pipeline and its sections

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const NAME_EXPECTED = 'a pipeline name of letters, digits, ".", "_" or "-"';
const ROUTING_TABLE = /^([a-z_][a-z0-9_$]*)\.([a-z_][a-z0-9_$]*)$/;

const ROUTING_SPEC: SectionSpec<{ table: string }> = {
  expected: "a map with table",
  fields: {
    table: {
      key: "table",
      reader: string("a table like spillway.routes (lower-case, unquoted)", ROUTING_TABLE),
      required: "a table like spillway.routes",
      doc: "The routing table, schema.table.",
    },
  },
};

const ROUTING: Reader<RoutingConfig> = {
  expected: ROUTING_SPEC.expected,
  jsonSchema: sectionSchema(ROUTING_SPEC),
  read: (checker, field) => {
    const section = readSection(checker, field, ROUTING_SPEC);
    if (section === undefined) return undefined;
    const [, schema, table] = ROUTING_TABLE.exec(section.table)!;
    return { schema: schema!, table: table! };
  },
  represent: (routing) => ({ table: `${routing.schema}.${routing.table}` }),
};

const PIPELINE_EXPECTED = "a pipeline (a map with source, tables and sinks)";

/** The top level as read, before `defaults` completes the table entries. */
type PipelineKeys = Omit<PipelineConfig, "file" | "baseDir" | "tables"> & {
  tables: TableDraft[];
};

/**
 * The top level of a pipeline file. `name` defaults to the file name, `defaults.topic_prefix`
 * to the name, and table entries to `defaults`, so {@linkcode readPipeline} reads those
 * three with the values they depend on.
 */
export const PIPELINE: SectionSpec<PipelineKeys> = {
  expected: PIPELINE_EXPECTED,
  fields: {
    name: {
      key: "name",
      reader: string(NAME_EXPECTED, NAME),
      doc: "The pipeline's name: up to 100 letters, digits, '.', '_' or '-'. The default " +
        "topic_prefix and part of the connection's application_name. Default: the file " +
        "name without its extension.",
    },
    source: {
      key: "source",
      reader: sectionReader(SOURCE),
      required: SOURCE.expected,
      doc: "The replication source: where to connect, which slot and publication to use.",
    },
    tables: {
      key: "tables",
      reader: TABLES,
      required: TABLES.expected,
      doc: 'Tables to follow: schema.table names or globs ("public.*", "*") to their ' +
        "options. An exact name wins over globs; among globs the longest literal prefix " +
        'wins. Quote mixed-case names: \'"Sales"."Order Items"\'.',
    },
    defaults: {
      key: "defaults",
      reader: sectionReader(DEFAULTS),
      doc: "What a table entry gets for each option it does not set.",
    },
    transforms: {
      key: "transforms",
      reader: sectionReader(TRANSFORMS),
      default: defaultsOf(TRANSFORMS),
      doc: "Time budget and failure handling of the tables' transforms.",
    },
    routing: {
      key: "routing",
      reader: nullable(ROUTING),
      default: null,
      doc: "Topics and keys kept in a table of the source database, for teams that manage " +
        "routing centrally: a map with table (schema.table, with columns pattern text, " +
        "topic text and key text[]). Its rows override the topic and key of the tables they " +
        "match; it is read at start, and its changes, which come through the slot, apply " +
        "from the next change on.",
    },
    sinks: {
      key: "sinks",
      reader: SINKS,
      required: SINKS.expected,
      doc: "Where changes go, at least one; each item a map with one key, the sink type. " +
        "The slot advances only past what every sink holds.",
    },
    queue: {
      key: "queue",
      reader: sectionReader(QUEUE),
      default: defaultsOf(QUEUE),
      doc: "The bounded queue between the source and the sinks.",
    },
    spill: {
      key: "spill",
      reader: sectionReader(SPILL),
      default: defaultsOf(SPILL),
      doc: "Streamed transactions (streaming: on or parallel) held until their commit.",
    },
    http: {
      key: "http",
      reader: HTTP,
      default: DEFAULT_HTTP,
      doc: "The HTTP endpoint of /health and /metrics: a map with listen, or off.",
    },
    log: {
      key: "log",
      reader: sectionReader(LOG),
      default: defaultsOf(LOG),
      doc: "Log lines on stderr.",
    },
  },
};

function readPipeline(checker: Checker, file: string): PipelineConfig | undefined {
  const root = checker.doc.contents;
  if (isNull(root)) {
    checker.report(0, `expected ${PIPELINE_EXPECTED}, found an empty file`);
    return undefined;
  }
  const rootField: Field = { node: root, path: "", offset: startOf(root) ?? 0 };
  if (!isMap(root)) {
    checker.report(rootField.offset, `expected ${PIPELINE_EXPECTED}, found ${describe(root)}`);
    return undefined;
  }
  const top = new Section(checker, rootField, shapeOf(PIPELINE));
  const fields = PIPELINE.fields;

  const fromFile = basename(file, extname(file));
  const name = readOptional(top, fields.name, { default: fromFile });
  if (!top.has("name") && !NAME.test(fromFile)) {
    checker.report(
      0,
      `"name": expected ${NAME_EXPECTED}, found ${quote(fromFile)} (from the file name; set name)`,
    );
  }

  const source = readRequired(top, fields.source);
  const defaults = readSection(checker, top.at(fields.defaults.key), DEFAULTS, {
    topicPrefix: name,
  });
  const tables = readRequired(top, fields.tables);
  const transforms = readOptional(top, fields.transforms);
  const routing = readOptional(top, fields.routing);
  const sinks = readRequired(top, fields.sinks);
  const queue = readOptional(top, fields.queue);
  const spill = readOptional(top, fields.spill);
  const http = readOptional(top, fields.http);
  const log = readOptional(top, fields.log);
  if (
    source === undefined || tables === undefined || sinks === undefined || defaults === undefined
  ) {
    return undefined;
  }
  return {
    name,
    file,
    baseDir: checker.baseDir,
    source,
    tables: tables.map((draft) => withDefaults(draft, defaults)),
    defaults,
    transforms,
    routing,
    sinks,
    queue,
    spill,
    http,
    log,
  };
}

// ---------------------------------------------------------------------------------------
// Syntax errors

/** The YAML library's message in our grammar: lower case first, no trailing period. */
function syntaxMessage(code: string, message: string): string {
  switch (code) {
    case "TAB_AS_INDENT":
      return "expected spaces for indentation, found a tab";
    case "MULTIPLE_DOCS":
      return 'expected one document, found a second "---"';
    case "TAG_RESOLVE_FAILED":
      return `expected no tags, found ${quote(message.replace(/^Unresolved tag: /, ""))}`;
    case "UNEXPECTED_TOKEN": {
      const match = /^Unexpected ([\w-]+)(?: token)? (?:at node end|in YAML stream: "(.*)")$/
        .exec(message);
      const token = match === null ? undefined : TOKENS[match[1]!] ?? match[2];
      if (token === undefined) break;
      const hint = "{}[],".includes(token) ? " (quote a value that contains { } [ ] or ,)" : "";
      return `found an unexpected ${quote(token)}${hint}`;
    }
  }
  const text = message.replace(/;? *please use .*$/i, "").replace(/\.$/, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

const TOKENS: Record<string, string> = {
  "flow-map-start": "{",
  "flow-map-end": "}",
  "flow-seq-start": "[",
  "flow-seq-end": "]",
  "comma": ",",
  "map-value-ind": ":",
  "seq-item-ind": "-",
};
