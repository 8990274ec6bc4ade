import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { parsePipelineConfig, PipelineConfigError } from "./mod.ts";
import { MINIMAL, parse, problems, SOURCE, yaml } from "./_test_utils.ts";

// ---------------------------------------------------------------------------------------
// Error messages

Deno.test("errors: each kind names file:line:col, the key, what was expected and what was found", () => {
  const text = yaml(
    ...SOURCE, // 1-4
    "  heartbeat: soon", // 5
    "  create_slot: yes", // 6
    "  sslmode: verify_full", // 7
    "tables:", // 8
    '  "public.*": {}', // 9
    "sinks:", // 10
    "  - file: { path: out.jsonl, rotate_bytes: big }", // 11
    "queue: { capacity: '5', high_watermark: 80% }", // 12
    "log: [info]", // 13
  );
  assert.deepEqual(problems(text), [
    'pipeline.yaml:5:14: "source.heartbeat": expected a duration like 10s or 200ms, or 0 or off, found "soon"',
    'pipeline.yaml:6:16: "source.create_slot": expected true or false, found "yes" (a string in YAML 1.2; write true or false)',
    'pipeline.yaml:7:12: "source.sslmode": expected one of "disable", "prefer", "require", "verify-ca", "verify-full", found "verify_full"; did you mean "verify-full"?',
    'pipeline.yaml:11:44: "sinks[0].file.rotate_bytes": expected a size like 100MB, or 0 or off, found "big"',
    'pipeline.yaml:12:20: "queue.capacity": expected an integer of at least 1, found "5" (a string; write 5 without quotes)',
    'pipeline.yaml:12:41: "queue.high_watermark": expected a number above 0 and at most 1, found "80%"',
    'pipeline.yaml:13:6: "log": expected a map with level and format, found a list',
  ]);
});

Deno.test("errors: required keys, empty values and wrong shapes", () => {
  assert.deepEqual(
    problems(
      yaml("source:", "  url: postgres://localhost/app", "  slot:", "tables: []", "sinks: []"),
    ),
    [
      'pipeline.yaml:2:3: "source.publication": expected a publication name like orders_pub, found no "publication" key',
      'pipeline.yaml:3:8: "source.slot": expected a slot name of 1 to 63 lower-case letters, digits or underscores, found nothing',
      'pipeline.yaml:4:9: "tables": expected a map of tables or globs to options, like public.orders: {} or "public.*": {}, found a list',
      'pipeline.yaml:5:8: "sinks": expected a list of sinks like - stdout: { format: json }, found an empty list',
    ],
  );
  assert.deepEqual(problems(yaml("name: x")), [
    'pipeline.yaml:1:1: "source": expected a map with url, slot and publication, found no "source" key',
    'pipeline.yaml:1:1: "tables": expected a map of tables or globs to options, like public.orders: {} or "public.*": {}, found no "tables" key',
    'pipeline.yaml:1:1: "sinks": expected a list of sinks like - stdout: { format: json }, found no "sinks" key',
  ]);
  assert.deepEqual(problems(""), [
    "pipeline.yaml:1:1: expected a pipeline (a map with source, tables and sinks), found an empty file",
  ]);
  assert.deepEqual(problems("- a\n- b\n"), [
    "pipeline.yaml:1:1: expected a pipeline (a map with source, tables and sinks), found a list",
  ]);
});

Deno.test("errors: all problems are reported together, sorted by position", () => {
  const lines = problems(yaml(
    "sinks:", // 1
    "  - stdout: { format: xml }", // 2
    "tables:", // 3
    "  public.orders: { key: id }", // 4
    "source:", // 5
    "  url: mysql://root:hunter2@localhost/app", // 6
    "  slot: Orders-CDC", // 7
    "  publication: p", // 8
  ));
  assert.deepEqual(lines, [
    'pipeline.yaml:2:23: "sinks[0].stdout.format": expected one of "json", "pretty", "auto", found "xml"',
    'pipeline.yaml:4:25: "tables[public.orders].key": expected a list of column names like [id], found "id"',
    'pipeline.yaml:6:8: "source.url": expected a connection URL like postgres://user:password@host:5432/database, found "mysql://root:***@localhost/app"',
    'pipeline.yaml:7:9: "source.slot": expected a slot name of 1 to 63 lower-case letters, digits or underscores, found "Orders-CDC"',
  ]);
});

Deno.test("errors: the thrown error is a ConfigError with structured problems", () => {
  let caught: unknown;
  try {
    parse(MINIMAL + "queue: { capacity: 0 }\n");
  } catch (error) {
    caught = error;
  }
  assert(caught instanceof PipelineConfigError);
  assert(caught instanceof ConfigError);
  assert.equal(caught.retriable, false);
  assert.equal(caught.file, "pipeline.yaml");
  assert.deepEqual(caught.problems, [{
    line: 9,
    column: 20,
    message: '"queue.capacity": expected an integer of at least 1, found 0',
  }]);
});

Deno.test("errors: unknown keys suggest the nearest allowed key, at the top level and nested", () => {
  const text = yaml(
    "source:", // 1
    "  url: postgres://localhost/app", // 2
    "  slott: orders_cdc", // 3
    "  slot: orders_cdc", // 4
    "  publication: p", // 5
    "  reconnect: { max_attempt: 3 }", // 6
    "tables:", // 7
    '  "public.*": { tranform: t.ts }', // 8
    "sinks:", // 9
    "  - kafka: { brokers: [k:9092], acks: all, compresion: lz4 }", // 10
    "sink: []", // 11
    "queue: { size: 5 }", // 12
    "transforms: { breaker: { failure: 3 } }", // 13
  );
  assert.deepEqual(problems(text), [
    'pipeline.yaml:3:3: unknown key "slott" in "source"; did you mean "slot"?',
    'pipeline.yaml:6:16: unknown key "max_attempt" in "source.reconnect"; did you mean "max_attempts"?',
    'pipeline.yaml:8:17: unknown key "tranform" in "tables[public.*]"; did you mean "transform"?',
    'pipeline.yaml:10:44: unknown key "compresion" in "sinks[0].kafka"; did you mean "compression"?',
    'pipeline.yaml:11:1: unknown key "sink" at the top level; did you mean "sinks"?',
    'pipeline.yaml:12:10: unknown key "size" in "queue"; expected one of "capacity", "max_bytes", "high_watermark"',
    'pipeline.yaml:13:26: unknown key "failure" in "transforms.breaker"; did you mean "failures"?',
  ]);
});

Deno.test("errors: a prefix also suggests a key", () => {
  assert.deepEqual(problems(MINIMAL + "spill: { mem: 1MB }\n"), [
    'pipeline.yaml:9:10: unknown key "mem" in "spill"; did you mean "memory_limit"?',
  ]);
});

Deno.test("errors: a key given twice", () => {
  assert.deepEqual(problems(MINIMAL + "log: { level: info, level: debug }\n"), [
    'pipeline.yaml:9:21: "log.level": expected the key once, found it again (first at line 9)',
  ]);
});

Deno.test("errors: sinks with two keys, unknown types, or no map", () => {
  const text = yaml(
    ...SOURCE,
    "tables: { public.orders: {} }", // 5
    "sinks:", // 6
    "  - stdout: { format: json }", // 7
    "    file: { path: out.jsonl }", // 8
    "  - kafak: { brokers: [k:9092] }", // 9
    "  - stdout", // 10
    "  - {}", // 11
    "  - file: { rotate_bytes: 1MB }", // 12
  );
  assert.deepEqual(problems(text), [
    'pipeline.yaml:7:5: "sinks[0]": expected one sink type per list item (stdout, file, kafka), found 2 keys: "stdout", "file"; start each sink with its own "-"',
    'pipeline.yaml:9:5: unknown sink type "kafak" in "sinks[1]"; did you mean "kafka"?',
    'pipeline.yaml:10:5: "sinks[2]": expected a map with one key naming the sink type (stdout, file, kafka), found "stdout"; write "stdout: {}"',
    'pipeline.yaml:11:5: "sinks[3]": expected one sink type per list item (stdout, file, kafka), found an empty map',
    'pipeline.yaml:12:11: "sinks[4].file.path": expected a file path like out/changes.jsonl, found no "path" key',
  ]);
});

Deno.test("errors: two file sinks writing one file", () => {
  const text = MINIMAL + "  - file: { path: out.jsonl }\n  - file: { path: ./out.jsonl }\n";
  assert.deepEqual(problems(text), [
    'pipeline.yaml:10:19: "sinks[2].file.path": expected a file no other file sink writes, found "/srv/spillway/out.jsonl", also written by "sinks[1].file"',
  ]);
});

Deno.test("errors: settings that contradict each other", () => {
  const source = (...extra: string[]) =>
    yaml(...SOURCE, ...extra, "tables: { public.orders: {} }", "sinks: [stdout: {}]");
  assert.deepEqual(problems(source("  proto_version: 1", "  streaming: parallel")), [
    'pipeline.yaml:6:14: "source.streaming": expected "off" with proto_version 1 (streaming "parallel" needs 4 or later), found "parallel"',
  ]);
  assert.deepEqual(problems(source("  proto_version: 1", "  streaming: on")), [
    'pipeline.yaml:6:14: "source.streaming": expected "off" with proto_version 1 (streaming "on" needs 2 or later), found "on"',
  ]);
  // The default streaming mode (off) works with every protocol version.
  assert.equal(parse(source("  proto_version: 1")).source.protoVersion, 1);
  assert.deepEqual(problems(source("  proto_version: 2", "  two_phase: true")), [
    'pipeline.yaml:6:14: "source.two_phase": expected false with proto_version 2 (two_phase needs 3 or later), found true',
  ]);
  assert.deepEqual(problems(source("  reconnect: { initial_delay: 2s, max_delay: 1s }")), [
    'pipeline.yaml:5:46: "source.reconnect.max_delay": expected max_delay to be at least initial_delay (2s), found 1s',
  ]);
  assert.equal(parse(source("  proto_version: 1", "  streaming: false")).source.streaming, "off");
  const kafka = (options: string) =>
    yaml(
      ...SOURCE,
      "tables: { public.orders: {} }",
      `sinks: [kafka: { brokers: [k:9092], ${options} }]`,
    );
  assert.deepEqual(problems(kafka("exactly_once: true, acks: 1")), [
    'pipeline.yaml:6:63: "sinks[0].kafka.acks": expected "all" when exactly_once is true, found 1',
  ]);
  assert.deepEqual(problems(kafka("format: debezium-avro")), [
    'pipeline.yaml:6:16: "sinks[0].kafka.schema_registry": expected a schema registry URL like http://localhost:8081 for format "debezium-avro", found no "schema_registry" key',
  ]);
});

Deno.test("errors: secrets are not printed", () => {
  const lines = problems(
    MINIMAL.replace(
      "postgres://replicator:secret@localhost:5432/app",
      "postgre://replicator:${PGPASSWORD}@localhost/app",
    ),
    { PGPASSWORD: "hunter2" },
  );
  assert.deepEqual(lines, [
    'pipeline.yaml:2:8: "source.url": expected a connection URL like postgres://user:password@host:5432/database, found "postgre://replicator:***@localhost/app"',
  ]);
  const sasl = problems(
    yaml(
      ...SOURCE,
      "tables: { public.orders: {} }",
      "sinks:",
      "  - kafka:",
      "      brokers: [k:9092]",
      "      sasl: { mechanism: plain, username: u, password: 12345 }",
    ),
  );
  assert.deepEqual(sasl, [
    'pipeline.yaml:9:56: "sinks[0].kafka.sasl.password": expected a password, found a number',
  ]);
});

Deno.test("errors: YAML syntax errors in the same grammar, with positions", () => {
  assert.deepEqual(problems("source:\n\t- x\n"), [
    "pipeline.yaml:2:1: invalid YAML: expected spaces for indentation, found a tab",
  ]);
  assert.deepEqual(problems("source: { url: 'x\n"), [
    "pipeline.yaml:2:1: invalid YAML: missing closing 'quote",
    "pipeline.yaml:2:1: invalid YAML: flow map in block collection must be sufficiently indented and end with a }",
  ]);
  assert.deepEqual(problems("a: 1\n---\nb: 2\n"), [
    'pipeline.yaml:2:1: invalid YAML: expected one document, found a second "---"',
  ]);
  assert.deepEqual(problems("queue: !big { capacity: 5 }\n"), [
    'pipeline.yaml:1:8: invalid YAML: expected no tags, found "!big"',
  ]);
  // `${VAR}` in a flow map must be quoted: braces end plain values there.
  assert.deepEqual(problems(MINIMAL + "queue: { capacity: ${CAPACITY} }\n", { CAPACITY: "5" }), [
    'pipeline.yaml:9:21: invalid YAML: found an unexpected "{" (quote a value that contains { } [ ] or ,)',
  ]);
  for (const line of problems("source: [1, 2\nsinks: x\n")) {
    assert.match(line, /^pipeline\.yaml:\d+:\d+: invalid YAML: [a-z]/);
  }
});

Deno.test("errors: an alias without its anchor", () => {
  assert.deepEqual(problems(MINIMAL + "queue: *settings\n"), [
    'pipeline.yaml:9:8: "queue": expected an alias of an anchor defined above it (&settings), found *settings',
  ]);
});

Deno.test("errors: a file name that is not a pipeline name needs name:", () => {
  assert.throws(
    () => parsePipelineConfig(MINIMAL, { file: "my pipeline.yaml", env: {} }),
    (error: Error) => {
      assert.equal(
        error.message,
        'my pipeline.yaml:1:1: "name": expected a pipeline name of letters, digits, ".", "_" or "-", found "my pipeline" (from the file name; set name)',
      );
      return true;
    },
  );
  const named = parsePipelineConfig("name: mine\n" + MINIMAL, {
    file: "my pipeline.yaml",
    env: {},
  });
  assert.equal(named.name, "mine");
});

Deno.test("config: a huge wrong value is echoed cut, with its length", () => {
  const huge = "x".repeat(1_000_000);
  const [problem, ...more] = problems(
    yaml(
      ...SOURCE,
      `  streaming: ${huge}`,
      "tables:",
      '  "public.*": {}',
      "sinks:",
      "  - stdout: {}",
    ),
  );
  assert.deepEqual(more, []);
  assert.ok(problem!.length < 1_000, `${problem!.length} characters`);
  assert.match(
    problem!,
    /"source\.streaming": expected .*, found "x{200}"… \(1000000 characters\)/,
  );
});
