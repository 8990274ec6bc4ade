import assert from "node:assert/strict";
import { parseLsn } from "../decoder/lsn.ts";
import { parsePipelineConfig } from "./mod.ts";
import { MINIMAL, parse, problems, yaml } from "./_test_utils.ts";

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
  // In the user info, substituted values are percent-encoded: the "@" stays in the password.
  assert.equal(config.source.url, "postgres://rep:p%40ss@db:5432/app");
  assert.equal(config.source.slot, "s1");
  assert.equal(config.source.publication, "pub");
});

Deno.test("env: in source.url, a value is percent-encoded where it lands: user info, path, query value", () => {
  const url = (template: string, env: Record<string, string>) =>
    parse(
      yaml(
        `source: { url: "${template}", slot: s, publication: p }`,
        'tables: { "public.*": {} }',
        "sinks: [stdout: {}]",
      ),
      env,
    ).source.url;
  const env = {
    U: "me@corp",
    PW: "a/b#c?d&e=f+g%",
    HOST: "db.internal",
    PORT: "6543",
    DB: "my db/x",
    MODE: "require",
    EXTRA: "application_name=app&connect_timeout=5",
    BASE: "postgres://u@db",
  };
  assert.equal(
    url("postgres://${U}:${PW}@${HOST}:${PORT}/${DB}?sslmode=${MODE}&password=${PW}&${EXTRA}", env),
    "postgres://me%40corp:a%2Fb%23c%3Fd%26e%3Df%2Bg%25@db.internal:6543/my%20db%2Fx" +
      "?sslmode=require&password=a%2Fb%23c%3Fd%26e%3Df%2Bg%25&application_name=app&connect_timeout=5",
  );
  // A raw "@" before the reference: the user info still runs to the authority's last "@".
  assert.equal(
    url("postgres://u:p@ss${PW}@db/app", env),
    "postgres://u:p@ssa%2Fb%23c%3Fd%26e%3Df%2Bg%25@db/app",
  );
  // Where a value lands follows the values substituted before it: after a whole base URL,
  // the path and a query value are encoded too.
  assert.equal(
    url("${BASE}/${DB}?password=${PW}", env),
    "postgres://u@db/my%20db%2Fx?password=a%2Fb%23c%3Fd%26e%3Df%2Bg%25",
  );
  // A whole URL, or a host and port, goes in as it is.
  assert.equal(url("${BASE}", env), "postgres://u@db");
  assert.equal(url("postgres://u@${HOST}:${PORT}", env), "postgres://u@db.internal:6543");
  // A value substituted anywhere else (here a topic) is never encoded.
  const topic = parse(MINIMAL + "defaults: { topic_prefix: '${PW}' }\n", env).defaults.topicPrefix;
  assert.equal(topic, env.PW);
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
// Aliases

Deno.test("aliases: each names the last anchor above it; thousands resolve (in one pass)", () => {
  const tables = Array.from({ length: 5_000 }, (_, i) => `  public.t${i}: { topic: *topic }`);
  const config = parse(
    yaml(
      "source: { url: postgres://localhost/app, slot: s, publication: p }",
      "defaults:",
      '  topic: &topic "first.{table}"',
      "tables:",
      ...tables,
      '  public.redefined: { topic: &topic "second.{table}" }',
      "  public.after: { topic: *topic }",
      "sinks: [stdout: {}]",
    ),
  );
  assert.equal(config.tables.length, 5_002);
  assert.equal(config.tables[0]?.topic, "first.{table}");
  assert.equal(config.tables[4_999]?.topic, "first.{table}");
  assert.equal(config.tables.at(-1)?.topic, "second.{table}");
  // An alias above its anchor names nothing.
  assert.deepEqual(
    problems(
      yaml(
        "source: { url: postgres://localhost/app, slot: s, publication: *p }",
        "defaults: { topic: &p x }",
        'tables: { "public.*": {} }',
        "sinks: [stdout: {}]",
      ),
    ).map((problem) => problem.replace(/^pipeline\.yaml:\d+:\d+: /, "")),
    ['"source.publication": expected an alias of an anchor defined above it (&p), found *p'],
  );
});
