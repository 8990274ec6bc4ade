import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { parseLsn } from "../decoder/lsn.ts";
import {
  connectOptions,
  loadPipelineConfig,
  matchTable,
  parsePipelineConfig,
  type PipelineConfig,
} from "./mod.ts";
import { BASE_DIR, EXAMPLES, MINIMAL, parse, SOURCE, yaml } from "./_test_utils.ts";

// ---------------------------------------------------------------------------------------
// Whole files

Deno.test("every example pipeline under examples/ parses, its variables set", async () => {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".yaml")) files.push(path);
    }
  };
  await walk(EXAMPLES);
  assert.ok(files.some((f) => f.endsWith("avro.yaml")), files.join(", "));
  const env: Record<string, string> = {
    SPILLWAY_DEMO_URL: "postgres://postgres@localhost:5432/postgres",
    SPILLWAY_KAFKA_BROKERS: "localhost:9092",
    SPILLWAY_SCHEMA_REGISTRY: "http://localhost:8081",
  };
  for (const file of files) {
    // Any other variable (a password, say) gets a placeholder.
    const text = await Deno.readTextFile(file);
    for (const [, name] of text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)) env[name!] ??= "placeholder";
    const config = await loadPipelineConfig(file, { env });
    assert.ok(config.sinks.length > 0, file);
  }
});

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
      captureDdl: false,
      heartbeatMs: 10_000,
      statusIntervalMs: 10_000,
      startLsn: null,
      reconnect: { maxAttempts: 10, initialDelayMs: 250, maxDelayMs: 15_000 },
      sslmode: null,
      sslrootcert: null,
      stateFile: null,
      maxMessageBytes: 2 ** 30,
    },
    tables: [
      {
        pattern: "public.orders",
        schema: { name: "public", glob: false },
        table: { name: "orders", glob: false },
        line: 17,
        column: 3,
        topic: "app.public.orders",
        key: ["id"],
        transform: [join(EXAMPLES, "transforms", "orders.ts")],
        allow: null,
        toast: "unchanged",
        toastPlaceholder: "__debezium_unavailable_value",
        toastCacheSize: 10_000,
      },
      {
        pattern: "public.order_items",
        schema: { name: "public", glob: false },
        table: { name: "order_items", glob: false },
        line: 21,
        column: 3,
        topic: "{prefix}.{schema}.{table}",
        key: ["order_id", "line_no"],
        transform: null,
        allow: null,
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
      allow: null,
      toast: "unchanged",
      toastPlaceholder: "__debezium_unavailable_value",
      toastCacheSize: 10_000,
    },
    transforms: {
      timeoutMs: 200,
      onError: [{ action: "dead_letter" }],
      breaker: { failures: 5, windowMs: 30_000, cooldownMs: 30_000 },
      allow: { read: [], net: [], env: [] },
      deadLetter: null,
      typesDir: null,
    },
    routing: null,
    sinks: [{ type: "stdout", format: "json" }],
    queue: { capacity: 1_024, maxBytes: 8_000_000, highWatermark: 0.8 },
    spill: { memoryLimitBytes: 16_000_000, dir: null },
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
  assert.deepEqual(config.spill, { memoryLimitBytes: 16_000_000, dir: join(EXAMPLES, "spill") });
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
    allow: null,
    toast: "unchanged",
    toastPlaceholder: "__debezium_unavailable_value",
    toastCacheSize: 10_000,
  });
  assert.deepEqual(config.sinks, [{ type: "stdout", format: "auto" }]);
  assert.deepEqual(config.queue, { capacity: 1_024, maxBytes: 8_000_000, highWatermark: 0.8 });
  assert.deepEqual(config.transforms, {
    timeoutMs: 200,
    onError: [{ action: "dead_letter" }],
    breaker: { failures: 5, windowMs: 30_000, cooldownMs: 30_000 },
    allow: { read: [], net: [], env: [] },
    deadLetter: null,
    typesDir: null,
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
    "  capture_ddl: true",
    "  heartbeat: off",
    "  status_interval: 2s",
    "  start_lsn: 16/B374D848",
    "  reconnect: { max_attempts: unlimited, initial_delay: 1s, max_delay: 1min }",
    "  sslmode: verify-full",
    "  sslrootcert: certs/ca.pem",
    "  state_file: state/shop.json",
    "  max_message_size: 64MiB",
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
    "  on_error: [retry: 2, dead_letter, stop]",
    "  breaker: { failures: 3, window: 1m, cooldown: 5s }",
    "  allow: { read: [data], net: ['rates.internal:443'], env: [RATES_KEY] }",
    "  dead_letter: { file: { path: dlq/shop.jsonl } }",
    "  types_dir: types",
    "sinks:",
    "  - stdout: { format: pretty }",
    "  - file: { path: /var/lib/spillway/out.jsonl, rotate_bytes: 1GiB, fsync: false }",
    "  - kafka:",
    "      brokers: [k1:9092, '[::1]:9093']",
    "      format: debezium-avro",
    "      exactly_once: true",
    "      transactional_id: shop-east-tx",
    "      schema_registry: { url: http://registry:8081, username: u, password: p, subject_naming: record, on_incompatible: dead_letter, dead_letter_topic: shop.refused }",
    "      acks: -1",
    "      compression: zstd",
    "      client_id: shop",
    "      topic_prefix: k",
    "      tls: { ca: certs/kafka.pem }",
    "      sasl: { mechanism: scram-sha-512, username: u, password: p }",
    "      schemas: false",
    "      tombstones: false",
    "      truncate: true",
    "      transaction_metadata: true",
    "      headers: false",
    "      keyless: error",
    "      create_topics: false",
    "      partitions: 6",
    "      replication_factor: 3",
    "      linger: 20ms",
    "      batch_bytes: 2MB",
    "      checkpoint_topic: ops.checkpoints",
    "queue: { capacity: 500, max_bytes: 1MiB, high_watermark: 1 }",
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
    captureDdl: true,
    heartbeatMs: 0,
    statusIntervalMs: 2_000,
    startLsn: parseLsn("16/B374D848"),
    reconnect: { maxAttempts: Infinity, initialDelayMs: 1_000, maxDelayMs: 60_000 },
    sslmode: "verify-full",
    sslrootcert: "/srv/spillway/certs/ca.pem",
    stateFile: "/srv/spillway/state/shop.json",
    maxMessageBytes: 64 * 2 ** 20,
  });
  const orders = matchTable(config, "public", "orders");
  assert.deepEqual(orders, {
    schema: "public",
    table: "orders",
    pattern: "public.orders",
    topic: "cdc.east.orders",
    key: ["id", "region"],
    transform: ["/opt/transforms/all.ts"],
    allow: null,
    toast: "last_value",
    toastPlaceholder: "",
    toastCacheSize: 500,
  });
  assert.deepEqual(config.transforms, {
    timeoutMs: 0,
    onError: [{ action: "retry", times: 2 }, { action: "dead_letter" }, { action: "stop" }],
    breaker: { failures: 3, windowMs: 60_000, cooldownMs: 5_000 },
    allow: { read: ["/srv/spillway/data"], net: ["rates.internal:443"], env: ["RATES_KEY"] },
    deadLetter: {
      type: "file",
      path: "/srv/spillway/dlq/shop.jsonl",
      rotateBytes: null,
      fsync: true,
    },
    typesDir: "/srv/spillway/types",
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
      schemaRegistry: {
        url: "http://registry:8081",
        username: "u",
        password: "p",
        ca: null,
        subjectNaming: "record",
        onIncompatible: "dead_letter",
        deadLetterTopic: "shop.refused",
      },
      acks: "all",
      compression: "zstd",
      clientId: "shop",
      topicPrefix: "k",
      tls: { ca: "/srv/spillway/certs/kafka.pem" },
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
      schemas: false,
      tombstones: false,
      truncate: true,
      transactionMetadata: true,
      headers: false,
      keyless: "error",
      createTopics: false,
      partitions: 6,
      replicationFactor: 3,
      lingerMs: 20,
      batchBytes: 2_000_000,
      checkpointTopic: "ops.checkpoints",
    },
  ]);
  assert.deepEqual(config.queue, { capacity: 500, maxBytes: 1_048_576, highWatermark: 1 });
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

Deno.test("source.state_file: a path relative to the pipeline file, off, or null for the default", () => {
  const stateFile = (line: string) =>
    parsePipelineConfig(
      [
        "source:",
        '  url: "postgres://u@h/d"',
        "  slot: s",
        "  publication: p",
        ...(line === "" ? [] : [`  ${line}`]),
        "tables: { public.t: {} }",
        "sinks: [stdout: {}]",
      ].join("\n"),
      { file: "/etc/spillway/orders.yaml", env: {} },
    ).source.stateFile;
  assert.equal(stateFile(""), null);
  assert.equal(stateFile("state_file: off"), false);
  assert.equal(stateFile("state_file: ~"), null);
  assert.equal(stateFile("state_file: ../lib/orders.state"), "/etc/lib/orders.state");
});

Deno.test("source.url: ${VAR} in the user info, the path or a query value is percent-encoded, so a password stays a password", () => {
  const parse = (url: string, env: Record<string, string>) =>
    parsePipelineConfig(
      `source: {url: "${url}", slot: s, publication: p}\ntables: {public.t: {}}\nsinks: [stdout: {}]`,
      { file: "p.yaml", env },
    );
  for (const password of ["50%off", "ab%41cd", "a/b#c?d", "x@127.0.0.1:1/db?", "p:w"]) {
    const config = parse("postgres://u:${PW}@db:5433/app?sslmode=disable", { PW: password });
    const options = connectOptions(config);
    assert.deepEqual(
      [options.user, options.password, options.host, options.port, options.database],
      ["u", password, "db", 5433, "app"],
    );
    assert.equal(options.sslmode, "disable", "the file's sslmode is kept");
  }
  assert.equal(connectOptions(parse("postgres://${U}@db/app", { U: "me@corp" })).user, "me@corp");
  // The URL parser takes the user info up to the authority's last "@": a raw "@" before the
  // reference keeps it in the user info.
  const afterAt = connectOptions(parse("postgres://u:p@ss${X}@db/app", { X: "/w#?" }));
  assert.deepEqual(
    [afterAt.user, afterAt.password, afterAt.host, afterAt.database],
    ["u", "p@ss/w#?", "db", "app"],
  );
  // In a query parameter's value: "#", "&" and "+" stay in the password, and the file's
  // sslmode is neither dropped nor overridden.
  for (const password of ["x#", "x&sslmode=disable", "a+b", "50% off=yes"]) {
    const options = connectOptions(
      parse("postgres://u@db/app?password=${PW}&sslmode=verify-full", { PW: password }),
    );
    assert.deepEqual([options.password, options.sslmode], [password, "verify-full"]);
  }
  const inQuery = connectOptions(
    parse("postgres://u@db/app?sslmode=require&password=${PW}", { PW: "x&sslmode=disable" }),
  );
  assert.deepEqual([inQuery.password, inQuery.sslmode], ["x&sslmode=disable", "require"]);
  // In the path: the database name.
  const database = connectOptions(
    parse("postgres://u@db/${DB}?sslmode=require", { DB: "my db?sslmode=disable#x" }),
  );
  assert.deepEqual([database.database, database.sslmode], ["my db?sslmode=disable#x", "require"]);
  // Encoded where it lands, so a value is written raw: one already percent-encoded (as an
  // older error message advised) is taken literally, and user and password are two variables.
  assert.equal(
    connectOptions(parse("postgres://u:${PW}@db/app", { PW: "p%40ss" })).password,
    "p%40ss",
  );
  const creds = connectOptions(parse("postgres://${CREDS}@db/app", { CREDS: "u:secret" }));
  assert.deepEqual([creds.user, creds.password], ["u:secret", undefined]);
  // A whole URL, or a host, from a variable goes in as it is.
  const whole = connectOptions(parse("${URL}", { URL: "postgres://u:p%40ss@db:6000/x" }));
  assert.deepEqual([whole.password, whole.port, whole.database], ["p@ss", 6000, "x"]);
  assert.equal(
    connectOptions(parse("postgres://u@${HOST}:5/x", { HOST: "db.internal" })).host,
    "db.internal",
  );
  // A literal URL that could not connect is an error at its line, naming the key.
  assert.throws(
    () => parse("postgres://u:50%off@db/app", {}),
    /p\.yaml:1:\d+: "source\.url": .*"%" that starts no percent-encoded byte; write "%" as %25/,
  );
});

Deno.test("source.url: a problem with a URL made from ${VAR} never shows the values substituted", () => {
  const secret = "Sup3rS3cret";
  const message = (url: string, env: Record<string, string>) => {
    try {
      parsePipelineConfig(
        `source: {url: "${url}", slot: s, publication: p}\ntables: {public.t: {}}\nsinks: [stdout: {}]`,
        { file: "p.yaml", env },
      );
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.message;
    }
    assert.fail(`${url} was accepted`);
  };
  const cases: [string, Record<string, string>, RegExp][] = [
    // A whole URL with a raw "/" in its password does not parse: redact() cannot find it.
    [
      "${DATABASE_URL}",
      { DATABASE_URL: `postgres://u:${secret}/x@db/app` },
      /"source\.url": expected a connection URL .*, found "\$\{DATABASE_URL\}"$/,
    ],
    // A password with ":" and a stray "%" passes the URL parser, not the connection's.
    [
      "${DATABASE_URL}",
      { DATABASE_URL: `postgres://u:${secret}:x%@db/app` },
      /"source\.url": Cannot use connection URL "\$\{DATABASE_URL\}": its password has a "%"/,
    ],
    // Otherwise the URL as written, its password hidden too.
    [
      "postgres://u:${PW}@db:99999/app",
      { PW: `${secret}/:@` },
      /"source\.url": expected a connection URL .*, found "postgres:\/\/u:\*\*\*@db:99999\/app"$/,
    ],
    [
      "postgres://u@${HOST}/app?password=${PW}",
      { HOST: "db:0", PW: secret },
      /"source\.url": Cannot use connection URL "postgres:\/\/u@\$\{HOST\}\/app\?password=\*\*\*": the port must be/,
    ],
  ];
  for (const [url, env, expected] of cases) {
    const text = message(url, env);
    assert.ok(!text.includes(secret), `the password is shown: ${text}`);
    assert.match(text, expected);
  }
});

Deno.test("source.max_message_size: at least 1MiB, since it also bounds the startup and catalog connections", () => {
  const read = (value: string) =>
    parse(
      yaml(
        ...SOURCE,
        `  max_message_size: ${value}`,
        "tables: { public.t: {} }",
        "sinks: [stdout: {}]",
      ),
    )
      .source.maxMessageBytes;
  assert.equal(read("1MiB"), 2 ** 20);
  assert.equal(read("1048576"), 2 ** 20);
  assert.equal(read("2GB"), 2_000_000_000);
  for (
    const [value, found] of [
      ["1MB", '"1MB" (1000000 bytes)'],
      ["64KiB", '"64KiB" (65536 bytes)'],
      ["1048575", "1048575"],
      ["0", "0"],
      ["lots", '"lots"'],
    ]
  ) {
    assert.throws(
      () => read(value!),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(
          error.message,
          `pipeline.yaml:5:21: "source.max_message_size": expected a size of at least 1MiB, like 64MiB, found ${found}`,
        );
        return true;
      },
    );
  }
});

Deno.test("transforms.dead_letter can be a Kafka topic: a kafka sink map with topic", () => {
  const config = parse(
    MINIMAL +
      "transforms:\n  on_error: [dead_letter]\n  dead_letter:\n" +
      "    kafka: { brokers: [k:9092], topic: shop.dlq, exactly_once: true }\n",
  );
  const deadLetter = config.transforms.deadLetter;
  assert.equal(deadLetter?.type, "kafka");
  if (deadLetter?.type !== "kafka") return;
  assert.equal(deadLetter.topic, "shop.dlq");
  assert.deepEqual(deadLetter.brokers, ["k:9092"]);
  const defaulted = parse(
    MINIMAL + "transforms: { dead_letter: { kafka: { brokers: [k:9092] } } }\n",
  ).transforms.deadLetter;
  assert.equal(defaulted?.type === "kafka" ? defaulted.topic : "not kafka", null);
});

Deno.test("routing names a table of the source database; a name that is not schema.table is refused", () => {
  assert.deepEqual(parse(MINIMAL + "routing: { table: ops.routes }\n").routing, {
    schema: "ops",
    table: "routes",
  });
  assert.throws(
    () => parse(MINIMAL + "routing: { table: routes }\n"),
    /"routing.table": expected a table like spillway.routes/,
  );
});
