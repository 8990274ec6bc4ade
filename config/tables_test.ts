import assert from "node:assert/strict";
import { matchTable, type PipelineConfig } from "./mod.ts";
import { MINIMAL, parse, problems, SOURCE, yaml } from "./_test_utils.ts";

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
  assert.deepEqual(config.tables[0]?.transform, ["/srv/transforms/orders.ts"]);
  assert.deepEqual(problems(MINIMAL.replace('"public.*": {}', "public.a: { transform: a.py }")), [
    'pipeline.yaml:6:26: "tables[public.a].transform": expected a transform module ending in .ts, .mts, .js, .mjs, found "a.py"',
  ]);
});

Deno.test("tables: a transform chain is a list of modules, applied in order; allow is per table", () => {
  const config = tables(
    "public.orders: { transform: [a.ts, ../b.ts], allow: { read: [data], env: [KEY] } }",
  );
  assert.deepEqual(config.tables[0]?.transform, ["/srv/spillway/a.ts", "/srv/b.ts"]);
  assert.deepEqual(config.tables[0]?.allow, {
    read: ["/srv/spillway/data"],
    net: [],
    env: ["KEY"],
  });
  // Empty lists are a grant of nothing; net names hosts, never URLs or wildcards.
  assert.deepEqual(
    tables("public.t: { transform: t.ts, allow: { read: [], net: [], env: [] } }").tables[0]
      ?.allow,
    { read: [], net: [], env: [] },
  );
  assert.deepEqual(
    tables("public.t: { allow: { net: ['api.internal:443', '10.0.0.1', '[::1]:80'] } }")
      .tables[0]?.allow?.net,
    ["api.internal:443", "10.0.0.1", "[::1]:80"],
  );
  for (const bad of ["'*'", "'http://api:443'"]) {
    assert.match(
      problems(MINIMAL.replace('"public.*": {}', `public.a: { allow: { net: [${bad}] } }`))[0] ??
        "",
      /allow\.net\[0\]": expected a host or host:port like api\.internal:443/,
    );
  }
  assert.deepEqual(
    problems(MINIMAL.replace('"public.*": {}', "public.a: { transform: [a.ts, b.py] }")),
    [
      'pipeline.yaml:6:33: "tables[public.a].transform[1]": expected a transform module ending in .ts, .mts, .js, .mjs, found "b.py"',
    ],
  );
});

Deno.test("transforms: on_error is a step or a list that ends in a step for events that still fail", () => {
  const file = (value: string) => `${MINIMAL}transforms: { on_error: ${value} }\n`;
  const onError = (value: string) => problems(file(value));
  assert.deepEqual(parse(file("[retry: 3, passthrough]")).transforms.onError, [
    { action: "retry", times: 3 },
    { action: "passthrough" },
  ]);
  assert.deepEqual(parse(file("skip")).transforms.onError, [{ action: "skip" }]);
  assert.match(onError("[retry: 3]")[0] ?? "", /expected a step after retry.*found retry last/);
  assert.match(onError("[skip, dead_letter]")[0] ?? "", /expected nothing after skip/);
  assert.match(onError("[dead_letter, skip]")[0] ?? "", /only stop may follow dead_letter/);
  assert.deepEqual(parse(file("[retry: 1, dead_letter, stop]")).transforms.onError.length, 3);
  assert.match(onError("[retry: 0, skip]")[0] ?? "", /on_error\[0\]\.retry/);
  assert.match(onError("dead_leter")[0] ?? "", /did you mean "dead_letter"/);
  assert.match(onError("{ dead_letter: 1 }")[0] ?? "", /"retry: N"/);
  assert.match(onError("[retry, skip]")[0] ?? "", /retry is written "retry: N"/);
  assert.match(
    problems(`${MINIMAL}transforms: { dead_letter: dlq.jsonl }\n`)[0] ?? "",
    /expected a sink like file: \{ path: dead-letter\.jsonl \}/,
  );
});
