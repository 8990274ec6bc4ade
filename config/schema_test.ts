import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "npm:yaml@2.9.1";
import { parsePipelineConfig, pipelineJsonSchema } from "./mod.ts";
import { EXAMPLES, MINIMAL } from "./_test_utils.ts";
import type { JsonSchema } from "./_readers.ts";

const ROOT = join(EXAMPLES, "..");

// ---------------------------------------------------------------------------------------
// A validator for the part of JSON Schema draft-07 that pipelineJsonSchema() uses

/** The schema as the validator walks it; a keyword it does not know makes it fail. */
type Schema = JsonSchema;

/** Keywords the validator knows; any other keyword in the schema fails the test. */
const KEYWORDS = new Set([
  "$schema",
  "title",
  "description",
  "default",
  "definitions",
  "$ref",
  "type",
  "enum",
  "anyOf",
  "oneOf",
  "properties",
  "patternProperties",
  "additionalProperties",
  "required",
  "minProperties",
  "items",
  "minItems",
  "uniqueItems",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "minLength",
  "maxLength",
  "pattern",
]);

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  const actual = jsonType(value);
  return actual === type || (type === "number" && actual === "integer");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return jsonType(value) === "object";
}

/** The problems of `value` against `schema`, each with its JSON path; none when it is valid. */
function validate(root: Schema, schema: Schema, value: unknown, path = "$"): string[] {
  for (const keyword of Object.keys(schema)) {
    if (!KEYWORDS.has(keyword)) throw new Error(`The validator does not know "${keyword}"`);
  }
  if (schema.$ref !== undefined) {
    const name = schema.$ref.replace(/^#\/definitions\//, "");
    const target = root.definitions?.[name];
    if (target === undefined) throw new Error(`Cannot resolve ${schema.$ref}`);
    return validate(root, target, value, path);
  }
  const problems: string[] = [];
  const types = schema.type === undefined ? [] : [schema.type].flat();
  if (types.length > 0 && !types.some((type) => hasType(value, type))) {
    return [`${path}: expected ${types.join(" or ")}, found ${jsonType(value)}`];
  }
  if (schema.enum !== undefined && !schema.enum.some((choice) => choice === value)) {
    problems.push(`${path}: expected one of ${JSON.stringify(schema.enum)}`);
  }
  if (schema.anyOf !== undefined) {
    const results = schema.anyOf.map((alternative) => validate(root, alternative, value, path));
    if (results.every((result) => result.length > 0)) {
      problems.push(`${path}: no alternative fits (${results.flat().join("; ")})`);
    }
  }
  if (schema.oneOf !== undefined) {
    const fitting = schema.oneOf.filter((alternative) =>
      validate(root, alternative, value, path).length === 0
    );
    if (fitting.length !== 1) {
      problems.push(`${path}: expected exactly one alternative to fit, ${fitting.length} do`);
    }
  }
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      problems.push(`${path}: shorter than ${schema.minLength}`);
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      problems.push(`${path}: longer than ${schema.maxLength}`);
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) {
      problems.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) {
      problems.push(`${path}: below ${schema.minimum}`);
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      problems.push(`${path}: above ${schema.maximum}`);
    }
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) {
      problems.push(`${path}: not above ${schema.exclusiveMinimum}`);
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      problems.push(`${path}: fewer than ${schema.minItems} items`);
    }
    const seen = value.map((item) => JSON.stringify(item));
    if (schema.uniqueItems && new Set(seen).size !== seen.length) {
      problems.push(`${path}: items repeat`);
    }
    if (schema.items !== undefined) {
      const items = schema.items;
      value.forEach((item, index) =>
        problems.push(...validate(root, items, item, `${path}[${index}]`))
      );
    }
  }
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) {
      problems.push(`${path}: fewer than ${schema.minProperties} keys`);
    }
    for (const key of schema.required ?? []) {
      if (!(key in value)) problems.push(`${path}: no "${key}" key`);
    }
    for (const key of keys) {
      const child = `${path}.${key}`;
      const matched: Schema[] = [];
      const property = schema.properties?.[key];
      if (property !== undefined) matched.push(property);
      for (const [pattern, patterned] of Object.entries(schema.patternProperties ?? {})) {
        if (new RegExp(pattern, "u").test(key)) matched.push(patterned);
      }
      for (const sub of matched) problems.push(...validate(root, sub, value[key], child));
      if (matched.length > 0 || schema.additionalProperties === undefined) continue;
      if (schema.additionalProperties === false) problems.push(`${child}: unknown key`);
      else if (schema.additionalProperties !== true) {
        problems.push(...validate(root, schema.additionalProperties, value[key], child));
      }
    }
  }
  return problems;
}

const SCHEMA = pipelineJsonSchema() as Schema;

function check(value: unknown): string[] {
  return validate(SCHEMA, SCHEMA, value);
}

/** Whether the schema and the parser agree on a file (with `env` for `${...}`). */
function verdicts(text: string, env: Record<string, string> = {}) {
  let parser = true;
  try {
    parsePipelineConfig(text, { file: "p.yaml", env, baseDir: "/srv" });
  } catch {
    parser = false;
  }
  return { parser, schema: check(parseYaml(text, { version: "1.2" })).length === 0 };
}

// ---------------------------------------------------------------------------------------
// Tests

Deno.test("schema: every example pipeline is valid", async () => {
  const files = [...Deno.readDirSync(EXAMPLES)].filter((entry) => entry.name.endsWith(".yaml"));
  assert(files.length >= 3, "expected the example pipelines");
  for (const { name } of files) {
    const text = await Deno.readTextFile(join(EXAMPLES, name));
    assert.deepEqual(check(parseYaml(text, { version: "1.2" })), [], name);
  }
});

Deno.test("schema: an unknown key and a wrong type are refused, as the parser refuses them", () => {
  assert.deepEqual(check(parseYaml(MINIMAL + "queu: {}\n")), ["$.queu: unknown key"]);
  const problems = check(parseYaml(MINIMAL + "queue: { capacity: many }\n"));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^\$\.queue\.capacity: no alternative fits/);
  assert.deepEqual(verdicts(MINIMAL + "queu: {}\n"), { parser: false, schema: false });
  assert.deepEqual(verdicts(MINIMAL + "queue: { capacity: many }\n"), {
    parser: false,
    schema: false,
  });
});

/** A small pipeline, with `line` replacing its section of the same key or added to it. */
function pipeline(line: string): string {
  const sections: Record<string, string> = {
    source: "source: { url: 'postgres://h/d', slot: s, publication: p }",
    tables: "tables: { 'public.*': {} }",
    sinks: "sinks: [stdout: {}]",
  };
  const key = line.slice(0, line.indexOf(":"));
  if (key in sections) return Object.values({ ...sections, [key]: line }).join("\n") + "\n";
  return [...Object.values(sections), line].join("\n") + "\n";
}

Deno.test("schema: agrees with the parser on values written in their different forms", () => {
  const source = "source: { url: 'postgres://h/d', slot: s, publication: p";
  const cases: [string, boolean][] = [
    [`${source}, heartbeat: 5000 }`, true],
    [`${source}, heartbeat: off }`, true],
    [`${source}, heartbeat: soon }`, false],
    [`${source}, streaming: true }`, true],
    [`${source}, reconnect: ~, start_lsn: 16/B374D848 }`, true],
    [`${source}, reconnect: { max_attempts: unlimited } }`, true],
    ["source: { url: 'mysql://h/d', slot: s, publication: p }", false],
    ["source: { url: 'postgres://h/d', slot: Bad, publication: p }", false],
    ["source: { url: 'postgres://h/d', slot: s }", false],
    ["spill: { memory_limit: 1000000 }", true],
    ["spill: { memory_limit: 1.5GiB }", true],
    ["spill: { memory_limit: lots }", false],
    ["queue: { capacity: '${CAPACITY}' }", true],
    ["queue: { high_watermark: 1.5 }", false],
    ["http: off", true],
    ["http: { listen: 9464 }", true],
    ["http: { listen: 'localhost:99' }", true],
    ["http: true", false],
    ["sinks: [stdout: {}, file: { path: a.jsonl, rotate_bytes: 100MB }]", true],
    ["sinks: [{ stdout: {}, file: { path: a.jsonl } }]", false],
    ["sinks: [kafka: { brokers: ['k:9092'], acks: -1, tls: true }]", true],
    ["sinks: [kafka: { brokers: [] }]", false],
    ["sinks: [nats: {}]", false],
    ["sinks: []", false],
    ["tables: { orders: {} }", false],
    ["tables: { 'public.orders': { key: [id, id] } }", false],
    [`tables: { '"Sales"."Order Items"': ~, '*': { toast: omit } }`, true],
    ["tables: {}", false],
  ];
  for (const [line, valid] of cases) {
    assert.deepEqual(
      verdicts(pipeline(line), { CAPACITY: "5" }),
      { parser: valid, schema: valid },
      line,
    );
  }
});

Deno.test("schema: pipeline.schema.json is what pipelineJsonSchema() gives", async () => {
  const committed = await Deno.readTextFile(join(ROOT, "pipeline.schema.json"));
  assert.equal(
    committed,
    JSON.stringify(pipelineJsonSchema(), null, 2) + "\n",
    "pipeline.schema.json is out of date; regenerate it: " +
      "deno run -A main.ts schema > pipeline.schema.json",
  );
});

/** The schema a key's value has under `schema`, through `$ref`, `anyOf` and `oneOf`. */
function propertySchema(schema: Schema, key: string): Schema | undefined {
  if (schema.$ref !== undefined) {
    return propertySchema(SCHEMA.definitions![schema.$ref.replace(/^#\/definitions\//, "")]!, key);
  }
  for (const alternative of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    const found = propertySchema(alternative, key);
    if (found !== undefined) return found;
  }
  return schema.properties?.[key];
}

function itemsSchema(schema: Schema): Schema | undefined {
  if (schema.items !== undefined) return schema.items;
  return (schema.anyOf ?? []).map(itemsSchema).find((items) => items !== undefined);
}

/** Keys of `value` (at `path`) that the schema does not have. */
function missingKeys(schema: Schema, value: unknown, path: string): string[] {
  if (Array.isArray(value)) {
    const items = itemsSchema(schema);
    if (items === undefined) return [`${path}: a list, which the schema does not have`];
    return value.flatMap((item, index) => missingKeys(items, item, `${path}[${index}]`));
  }
  if (!isObject(value)) return [];
  const patterned = Object.values(schema.patternProperties ?? {});
  if (patterned.length > 0) {
    // Map keys here are table names, not keys of the schema.
    return Object.entries(value).flatMap(([name, entry]) =>
      missingKeys(patterned[0]!, entry, `${path}[${name}]`)
    );
  }
  return Object.entries(value).flatMap(([key, entry]) => {
    const child = path === "" ? key : `${path}.${key}`;
    const sub = propertySchema(schema, key);
    return sub === undefined ? [child] : missingKeys(sub, entry, child);
  });
}

Deno.test("schema: every key of the README's Pipelines example is in the schema", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const block = /^## Pipelines\n[^]*?```yaml\n([^]*?)```/m.exec(readme);
  assert(block !== null, 'expected a ```yaml block after "## Pipelines" in README.md');
  const example = parseYaml(block[1]!, { version: "1.2" });
  assert(isObject(example) && "sinks" in example, "expected the README's example pipeline");
  assert.deepEqual(missingKeys(SCHEMA, example, ""), [], "README keys missing in the schema");
});
