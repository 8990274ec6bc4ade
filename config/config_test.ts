import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.ts";
import { parseLsn } from "../decoder/lsn.ts";
import {
  loadPipelineConfig,
  matchTable,
  parsePipelineConfig,
  type PipelineConfig,
  PipelineConfigError,
} from "./config.ts";

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "..", "examples");
const BASE_DIR = "/srv/spillway";

/** Lines of YAML, joined, so that line numbers in expectations are easy to count. */
function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

const SOURCE = [
  "source:",
  "  url: postgres://replicator:secret@localhost:5432/app",
  "  slot: orders_cdc",
  "  publication: orders_pub",
];
const MINIMAL = yaml(...SOURCE, "tables:", '  "public.*": {}', "sinks:", "  - stdout: {}");

function parse(text: string, env: Record<string, string | undefined> = {}): PipelineConfig {
  return parsePipelineConfig(text, { file: "pipeline.yaml", env, baseDir: BASE_DIR });
}

/** The problem lines of a file that must not parse. */
function problems(text: string, env: Record<string, string | undefined> = {}): string[] {
  try {
    parse(text, env);
  } catch (error) {
    assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error.message.split("\n");
  }
  assert.fail("expected the configuration to be rejected");
}

// ---------------------------------------------------------------------------------------
// Whole files

Deno.test("examples/orders.yaml parses to the typed config with every default filled in", async () => {
  const config = await loadPipelineConfig(join(EXAMPLES, "orders.yaml"), {
    env: { PGPASSWORD: "s3cret" },
  });
  const expected: PipelineConfig = {
    name: "orders",
    file: join(EXAMPLES, "orders.yaml"),
    baseDir: EXAMPLES,
    source: {
      url: "postgres://replicator:s3cret@localhost:5432/app",
      slot: "orders_cdc",
      publication: "orders_pub",
      createSlot: true,
      createPublication: true,
      failover: false,
      twoPhase: false,
      protoVersion: "auto",
      streaming: "off",
      binary: false,
      heartbeatMs: 10_000,
      statusIntervalMs: 10_000,
      startLsn: null,
      reconnect: { maxAttempts: 10, initialDelayMs: 250, maxDelayMs: 15_000 },
      sslmode: null,
      sslrootcert: null,
    },
    tables: [
      {
        pattern: "public.orders",
        schema: { name: "public", glob: false },
        table: { name: "orders", glob: false },
        line: 16,
        column: 3,
        topic: "app.public.orders",
        key: ["id"],
        transform: join(EXAMPLES, "transforms", "orders.ts"),
        toast: "unchanged",
        toastPlaceholder: "__debezium_unavailable_value",
        toastCacheSize: 10_000,
      },
      {
        pattern: "public.order_items",
        schema: { name: "public", glob: false },
        table: { name: "order_items", glob: false },
        line: 20,
        column: 3,
        topic: "{prefix}.{schema}.{table}",
        key: ["order_id", "line_no"],
        transform: null,
        toast: "unchanged",
        toastPlaceholder: "__debezium_unavailable_value",
        toastCacheSize: 10_000,
      },
    ],
    defaults: {
      topic: "{prefix}.{schema}.{table}",
      topicPrefix: "app",
      key: null,
      transform: null,
      toast: "unchanged",
      toastPlaceholder: "__debezium_unavailable_value",
      toastCacheSize: 10_000,
    },
    transforms: {
      timeoutMs: 200,
      onError: "dead_letter",
      breaker: { failures: 5, windowMs: 30_000 },
      deadLetterTopic: null,
    },
    sinks: [{ type: "stdout", format: "json" }],
    queue: { capacity: 10_000, highWatermark: 0.8 },
    spill: { memoryLimitBytes: 64_000_000, dir: null },
    http: { listen: "127.0.0.1:9464", hostname: "127.0.0.1", port: 9464 },
    log: { level: "info", format: "text" },
  };
  assert.deepEqual(config, expected);
  assert.equal(matchTable(config, "public", "order_items")?.topic, "app.public.order_items");
  assert.equal(matchTable(config, "public", "customers"), null);
});

Deno.test("examples/file-sink.yaml parses; its paths resolve against its directory", async () => {
  const config = await loadPipelineConfig(join(EXAMPLES, "file-sink.yaml"), {
    env: { PGPASSWORD: "s3cret", PGPORT: "6543" },
  });
  assert.equal(config.name, "file-sink");
  assert.equal(config.source.url, "postgres://replicator:s3cret@localhost:6543/app");
  assert.deepEqual(config.sinks, [{
    type: "file",
    path: join(EXAMPLES, "out", "changes.jsonl"),
    rotateBytes: 100_000_000,
    fsync: true,
  }]);
  assert.deepEqual(config.spill, { memoryLimitBytes: 64_000_000, dir: join(EXAMPLES, "spill") });
  assert.equal(config.http, null);
  assert.equal(config.log.format, "json");
  assert.equal(matchTable(config, "public", "documents")?.toast, "placeholder");
  assert.equal(matchTable(config, "public", "orders")?.topic, "file-sink.public.orders");
});

Deno.test("a minimal file gets every default", () => {
  const config = parse(MINIMAL);
  assert.equal(config.name, "pipeline");
  assert.equal(config.baseDir, BASE_DIR);
  assert.deepEqual(config.defaults, {
    topic: "{prefix}.{schema}.{table}",
    topicPrefix: "pipeline",
    key: null,
    transform: null,
    toast: "unchanged",
    toastPlaceholder: "__debezium_unavailable_value",
    toastCacheSize: 10_000,
  });
  assert.deepEqual(config.sinks, [{ type: "stdout", format: "auto" }]);
  assert.deepEqual(config.queue, { capacity: 10_000, highWatermark: 0.8 });
  assert.deepEqual(config.transforms, {
    timeoutMs: 200,
    onError: "dead_letter",
    breaker: { failures: 5, windowMs: 30_000 },
    deadLetterTopic: null,
  });
  assert.equal(config.source.streaming, "off");
  assert.equal(config.source.protoVersion, "auto");
  assert.deepEqual(config.http, { listen: "127.0.0.1:9464", hostname: "127.0.0.1", port: 9464 });
});

Deno.test("every option can be set", () => {
  const config = parse(yaml(
    "name: shop-east",
    "source:",
    "  url: postgresql://r@db:5433/shop?sslmode=require",
    "  slot: shop_cdc",
    "  publication: Shop Pub",
    "  create_slot: false",
    "  create_publication: false",
    "  failover: true",
    "  two_phase: true",
    "  proto_version: 4",
    "  streaming: parallel",
    "  binary: true",
    "  heartbeat: off",
    "  status_interval: 2s",
    "  start_lsn: 16/B374D848",
    "  reconnect: { max_attempts: unlimited, initial_delay: 1s, max_delay: 1min }",
    "  sslmode: verify-full",
    "  sslrootcert: certs/ca.pem",
    "tables:",
    "  public.orders: { key: [id, region], toast: last_value, toast_cache_size: 500 }",
    "defaults:",
    "  topic: 'cdc.{prefix}.{table}'",
    "  topic_prefix: east",
    "  toast: placeholder",
    "  toast_placeholder: ''",
    "  transform: /opt/transforms/all.ts",
    "transforms:",
    "  timeout: 0",
    "  on_error: stop",
    "  breaker: { failures: 3, window: 1m }",
    "  dead_letter_topic: shop.dlq",
    "sinks:",
    "  - stdout: { format: pretty }",
    "  - file: { path: /var/lib/spillway/out.jsonl, rotate_bytes: 1GiB, fsync: false }",
    "  - kafka:",
    "      brokers: [k1:9092, '[::1]:9093']",
    "      format: debezium-avro",
    "      exactly_once: true",
    "      transactional_id: shop-east-tx",
    "      schema_registry: { url: http://registry:8081, username: u, password: p }",
    "      acks: -1",
    "      compression: zstd",
    "      client_id: shop",
    "      topic_prefix: k",
    "      tls: { ca: certs/kafka.pem }",
    "      sasl: { mechanism: scram-sha-512, username: u, password: p }",
    "queue: { capacity: 500, high_watermark: 1 }",
    "spill: { memory_limit: 1GiB, dir: /var/tmp/spill }",
    "http: { listen: '[::1]:0' }",
    "log: { level: debug, format: json }",
  ));
  assert.deepEqual(config.source, {
    url: "postgresql://r@db:5433/shop?sslmode=require",
    slot: "shop_cdc",
    publication: "Shop Pub",
    createSlot: false,
    createPublication: false,
    failover: true,
    twoPhase: true,
    protoVersion: 4,
    streaming: "parallel",
    binary: true,
    heartbeatMs: 0,
    statusIntervalMs: 2_000,
    startLsn: parseLsn("16/B374D848"),
    reconnect: { maxAttempts: Infinity, initialDelayMs: 1_000, maxDelayMs: 60_000 },
    sslmode: "verify-full",
    sslrootcert: "/srv/spillway/certs/ca.pem",
  });
  const orders = matchTable(config, "public", "orders");
  assert.deepEqual(orders, {
    schema: "public",
    table: "orders",
    pattern: "public.orders",
    topic: "cdc.east.orders",
    key: ["id", "region"],
    transform: "/opt/transforms/all.ts",
    toast: "last_value",
    toastPlaceholder: "",
    toastCacheSize: 500,
  });
  assert.deepEqual(config.transforms, {
    timeoutMs: 0,
    onError: "stop",
    breaker: { failures: 3, windowMs: 60_000 },
    deadLetterTopic: "shop.dlq",
  });
  assert.deepEqual(config.sinks, [
    { type: "stdout", format: "pretty" },
    { type: "file", path: "/var/lib/spillway/out.jsonl", rotateBytes: 1_073_741_824, fsync: false },
    {
      type: "kafka",
      brokers: ["k1:9092", "[::1]:9093"],
      format: "debezium-avro",
      exactlyOnce: true,
      transactionalId: "shop-east-tx",
      schemaRegistry: { url: "http://registry:8081", username: "u", password: "p" },
      acks: "all",
      compression: "zstd",
      clientId: "shop",
      topicPrefix: "k",
      tls: { ca: "/srv/spillway/certs/kafka.pem" },
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
    },
  ]);
  assert.deepEqual(config.queue, { capacity: 500, highWatermark: 1 });
  assert.deepEqual(config.spill, { memoryLimitBytes: 1_073_741_824, dir: "/var/tmp/spill" });
  assert.deepEqual(config.http, { listen: "[::1]:0", hostname: "::1", port: 0 });
  assert.deepEqual(config.log, { level: "debug", format: "json" });
});

Deno.test("http is on by default and can be turned off or given a port", () => {
  const withHttp = (line: string) => parse(MINIMAL + line + "\n").http;
  assert.equal(withHttp("http: off"), null);
  assert.equal(withHttp("http: false"), null);
  assert.equal(withHttp("http:"), null);
  assert.equal(withHttp("http: { listen: off }"), null);
  assert.deepEqual(withHttp("http: { listen: 9100 }"), {
    listen: "9100",
    hostname: "127.0.0.1",
    port: 9100,
  });
  assert.deepEqual(withHttp("http: { listen: '0.0.0.0:9464' }"), {
    listen: "0.0.0.0:9464",
    hostname: "0.0.0.0",
    port: 9464,
  });
});

Deno.test("file sinks: rotation off, null sink options, aliases", () => {
  const config = parse(yaml(
    ...SOURCE,
    "tables: { public.orders: }",
    "sinks:",
    "  - file: &file { path: a.jsonl, rotate_bytes: off }",
    "  - file: { path: b.jsonl, rotate_bytes: 0 }",
    "  - stdout:",
  ));
  assert.deepEqual(config.sinks, [
    { type: "file", path: "/srv/spillway/a.jsonl", rotateBytes: null, fsync: true },
    { type: "file", path: "/srv/spillway/b.jsonl", rotateBytes: null, fsync: true },
    { type: "stdout", format: "auto" },
  ]);
  assert.equal(config.tables[0]?.topic, "{prefix}.{schema}.{table}");
});

// ---------------------------------------------------------------------------------------
// Environment variables

Deno.test("env: ${VAR} is substituted anywhere in a scalar", () => {
  const config = parse(
    yaml(
      "source:",
      "  url: postgres://${PGUSER}:${PGPASSWORD}@${PGHOST}:5432/app",
      "  slot: ${SLOT}",
      '  publication: "${PUBLICATION}"',
      "tables:",
      '  "public.*": {}',
      "sinks:",
      "  - stdout: {}",
    ),
    { PGUSER: "rep", PGPASSWORD: "p@ss", PGHOST: "db", SLOT: "s1", PUBLICATION: "pub" },
  );
  assert.equal(config.source.url, "postgres://rep:p@ss@db:5432/app");
  assert.equal(config.source.slot, "s1");
  assert.equal(config.source.publication, "pub");
});

Deno.test("env: ${VAR:-default} uses the default when the variable is unset or empty", () => {
  const text = yaml(
    "source:",
    "  url: postgres://localhost/app",
    "  slot: ${SLOT:-fallback_slot}",
    "  publication: ${PUB:-fallback_pub}",
    "tables:",
    '  "public.*": {}',
    "sinks:",
    "  - stdout: {}",
  );
  const config = parse(text, { PUB: "" });
  assert.equal(config.source.slot, "fallback_slot");
  assert.equal(config.source.publication, "fallback_pub");
  assert.equal(parse(text, { SLOT: "set_slot" }).source.slot, "set_slot");
});

Deno.test("env: a substituted value takes the type its field expects", () => {
  const env = { CAPACITY: "500", PUB: "123", START_LSN: "16/B374D848", BAD: "lots" };
  const block = parse(MINIMAL + "queue:\n  capacity: ${CAPACITY}\n", env);
  assert.equal(block.queue.capacity, 500);
  const flow = parse(MINIMAL + 'queue: { capacity: "${CAPACITY}" }\n', env);
  assert.equal(flow.queue.capacity, 500);
  assert.equal(parse(MINIMAL + "queue: { capacity: '${UNSET:-250}' }\n").queue.capacity, 250);
  const publication = parse(MINIMAL.replace("publication: orders_pub", "publication: ${PUB}"), env);
  assert.equal(publication.source.publication, "123");
  const lsn = (value: string, vars: Record<string, string>) =>
    parse(MINIMAL.replace("  slot:", `  start_lsn: ${value}\n  slot:`), vars).source.startLsn;
  assert.equal(lsn("${START_LSN:-}", {}), null);
  assert.equal(lsn("${START_LSN:-}", env), parseLsn("16/B374D848"));
  assert.equal(parse(MINIMAL + "http: ${HTTP:-off}\n").http, null);
  assert.deepEqual(problems(MINIMAL + 'queue: { capacity: "${BAD}" }\n', env), [
    'pipeline.yaml:9:20: "queue.capacity": expected an integer of at least 1, found "lots"',
  ]);
});

Deno.test("env: $${ writes a literal ${ and a lone $ stays", () => {
  const config = parse(MINIMAL + "defaults: { toast_placeholder: 'cost $5, $${NOT_A_VAR}' }\n");
  assert.equal(config.defaults.toastPlaceholder, "cost $5, ${NOT_A_VAR}");
});

Deno.test("env: a missing variable names the variable, the key and its position", () => {
  const text = yaml(
    "source:",
    "  url: postgres://replicator:${PGPASSWORD}@localhost:5432/app",
    "  slot: orders_cdc",
    "  publication: ${PUBLICATION}",
    "tables:",
    '  "public.*": {}',
    "sinks:",
    "  - stdout: {}",
  );
  assert.deepEqual(problems(text), [
    'pipeline.yaml:2:30: "source.url": expected environment variable "PGPASSWORD" to be set, found it unset (or give a default: ${PGPASSWORD:-value})',
    'pipeline.yaml:4:16: "source.publication": expected environment variable "PUBLICATION" to be set, found it unset (or give a default: ${PUBLICATION:-value})',
  ]);
});

Deno.test("env: a malformed reference is an error", () => {
  assert.deepEqual(problems(MINIMAL + "defaults: { topic_prefix: 'a${1BAD}b' }\n"), [
    'pipeline.yaml:9:29: "defaults.topic_prefix": expected a variable like ${NAME} or ${NAME:-default}, found "${1BAD}" (write $${ for a literal ${)',
  ]);
  assert.deepEqual(problems(MINIMAL + "defaults: { topic_prefix: 'a${OPEN' }\n"), [
    'pipeline.yaml:9:29: "defaults.topic_prefix": expected a variable like ${NAME} or ${NAME:-default}, found "${OPEN" (write $${ for a literal ${)',
  ]);
});

Deno.test("env: the process environment is the default", () => {
  const name = "SPILLWAY_CONFIG_TEST_SLOT";
  Deno.env.set(name, "from_process");
  try {
    const text = MINIMAL.replace("slot: orders_cdc", `slot: \${${name}}`);
    const config = parsePipelineConfig(text, { file: "p.yaml" });
    assert.equal(config.source.slot, "from_process");
  } finally {
    Deno.env.delete(name);
  }
});

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
    'pipeline.yaml:12:10: unknown key "size" in "queue"; expected one of "capacity", "high_watermark"',
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

Deno.test("loadPipelineConfig: a missing file is a clear ConfigError", async () => {
  await assert.rejects(
    loadPipelineConfig("no/such/pipeline.yaml"),
    (error: Error) => {
      assert(error instanceof ConfigError);
      assert.match(
        error.message,
        /^Cannot load pipeline "no\/such\/pipeline\.yaml": file not found \(looked in ".*no\/such\/pipeline\.yaml"\)$/,
      );
      return true;
    },
  );
});

Deno.test("loadPipelineConfig: messages name the file as given", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "broken.yaml");
    await Deno.writeTextFile(path, MINIMAL + "queue: { capacity: -1 }\n");
    await assert.rejects(loadPipelineConfig(path, { env: {} }), (error: Error) => {
      assert.equal(
        error.message,
        `${path}:9:20: "queue.capacity": expected an integer of at least 1, found -1`,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------
// Tables

function tables(...entries: string[]): PipelineConfig {
  return parse(yaml(...SOURCE, "tables:", ...entries.map((e) => `  ${e}`), "sinks: [stdout: {}]"));
}

Deno.test("tables: exact names win over globs, then the longest literal prefix", () => {
  const config = tables(
    "'*': {}",
    "'*.orders': { topic: any.orders }",
    "'public.*': { topic: 'pub.{table}' }",
    "'public.order_*': { topic: 'orders.{table}' }",
    "public.order_items: { topic: items }",
    "'audit.?og': { topic: 'audit.{table}' }",
  );
  const topic = (schema: string, table: string) => matchTable(config, schema, table)?.topic;
  assert.equal(topic("public", "order_items"), "items"); // exact
  assert.equal(topic("public", "order_lines"), "orders.order_lines"); // public.order_* (13)
  assert.equal(topic("public", "orders"), "pub.orders"); // public.* (7) over *.orders (0)
  assert.equal(topic("sales", "orders"), "any.orders"); // *.orders: more literal than *
  assert.equal(topic("sales", "customers"), "pipeline.sales.customers"); // *
  assert.equal(topic("audit", "log"), "audit.log");
  assert.equal(topic("audit", "blog"), "pipeline.audit.blog");
  assert.equal(matchTable(config, "public", "order_items")?.pattern, "public.order_items");
});

Deno.test("tables: equal specificity goes to the entry written first", () => {
  const config = tables("'s?.t': { topic: first }", "'?s.t': { topic: second }");
  assert.equal(matchTable(config, "ss", "t")?.topic, "first");
  assert.equal(matchTable(config, "xs", "t")?.topic, "second");
});

Deno.test("tables: no match is null", () => {
  const config = tables("public.orders: {}", "'audit.*': {}");
  assert.equal(matchTable(config, "public", "customers"), null);
  assert.equal(matchTable(config, "Public", "orders"), null);
});

Deno.test("tables: quoted identifiers keep case, spaces and dots", () => {
  const config = tables(
    `'"Sales"."Order Items"': { key: [Line No] }`,
    `'"my.schema".events': {}`,
    `'"Sales".*': { topic: 'sales.{table}' }`,
    `'"say ""hi""".t': {}`,
  );
  assert.deepEqual(config.tables.map((entry) => [entry.schema, entry.table]), [
    [{ name: "Sales", glob: false }, { name: "Order Items", glob: false }],
    [{ name: "my.schema", glob: false }, { name: "events", glob: false }],
    [{ name: "Sales", glob: false }, { name: "*", glob: true }],
    [{ name: 'say "hi"', glob: false }, { name: "t", glob: false }],
  ]);
  const items = matchTable(config, "Sales", "Order Items");
  assert.equal(items?.topic, "pipeline.Sales.Order Items");
  assert.deepEqual(items?.key, ["Line No"]);
  assert.equal(matchTable(config, "Sales", "Customers")?.topic, "sales.Customers");
  assert.equal(matchTable(config, "sales", "Customers"), null);
  assert.equal(matchTable(config, "my.schema", "events")?.pattern, '"my.schema".events');
  assert.notEqual(matchTable(config, 'say "hi"', "t"), null);
});

Deno.test("tables: names that are not schema.table, or listed twice", () => {
  const text = yaml(
    ...SOURCE,
    "tables:", // 5
    "  orders: {}", // 6
    "  Sales.Orders: {}", // 7
    "  public.order items: {}", // 8
    "  a.b.c: {}", // 9
    `  '"Sales.orders': {}`, // 10
    "  public.orders: {}", // 11
    `  '"public"."orders"': {}`, // 12
    "  public.orders2: { topic: '{prefix}.{tabel}' }", // 13
    "sinks: [stdout: {}]",
  );
  assert.deepEqual(problems(text), [
    'pipeline.yaml:6:3: "tables": expected a table like schema.table or a glob like public.*, found "orders"; did you mean "public.orders"?',
    `pipeline.yaml:7:3: "tables": expected a table like schema.table or a glob like public.*, found "Sales.Orders"; unquoted names are lower case in PostgreSQL, so quote mixed-case ones: '"Sales"."Orders"'`,
    'pipeline.yaml:8:3: "tables": expected a table like schema.table or a glob like public.*, found "public.order items"; quote names with spaces, dots or upper case, as in "Sales"."Order Items"',
    'pipeline.yaml:9:3: "tables": expected a table like schema.table or a glob like public.*, found "a.b.c"; quote names with dots, as in "my.schema".orders',
    `pipeline.yaml:10:3: "tables": expected a table like schema.table or a glob like public.*, found '"Sales.orders'; a quoted name is missing its closing quote`,
    `pipeline.yaml:12:3: "tables": expected each table or glob once, found '"public"."orders"', the same as line 11`,
    'pipeline.yaml:13:28: "tables[public.orders2].topic": expected placeholders {prefix}, {schema} or {table}, found "{tabel}"; did you mean "{table}"?',
  ]);
});

Deno.test("tables: defaults apply to every entry that does not set the option", () => {
  const config = parse(yaml(
    ...SOURCE,
    "tables:",
    "  public.orders: { toast: omit }",
    "  'public.*': { key: null }",
    "defaults: { key: [id], toast: last_value, topic: '{schema}_{table}' }",
    "sinks: [stdout: {}]",
  ));
  assert.deepEqual(
    config.tables.map(({ pattern, key, toast, topic }) => ({ pattern, key, toast, topic })),
    [
      { pattern: "public.orders", key: ["id"], toast: "omit", topic: "{schema}_{table}" },
      { pattern: "public.*", key: null, toast: "last_value", topic: "{schema}_{table}" },
    ],
  );
  assert.equal(matchTable(config, "public", "orders")?.topic, "public_orders");
});

Deno.test("tables: a transform must be a module and resolves against the base directory", () => {
  const config = tables("public.orders: { transform: ../transforms/orders.ts }");
  assert.equal(config.tables[0]?.transform, "/srv/transforms/orders.ts");
  assert.deepEqual(problems(MINIMAL.replace('"public.*": {}', "public.a: { transform: a.py }")), [
    'pipeline.yaml:6:26: "tables[public.a].transform": expected a transform module ending in .ts, .mts, .js, .mjs, found "a.py"',
  ]);
});
