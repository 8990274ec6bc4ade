import assert from "node:assert/strict";
import { SLOTS_USAGE } from "../cli/slots.ts";
import { parseConnectionUrl } from "../postgres/connection_string.ts";
import type { Finding } from "./finding.ts";
import { checkSettings } from "./server.ts";
import { checkSlot, dropSlotCommand } from "./slot.ts";
import { pipeline, server, setting, slot } from "./_testing.ts";

/**
 * Asserts that every `spillway` command in the fixes is a `spillway slots` command as
 * SLOTS_USAGE spells it: `list <url>` or `drop <url> <slot>`, the URL one shell word that
 * parses, the password hidden.
 */
function assertSpillwayCommands(findings: Finding[]): number {
  const forms = SLOTS_USAGE.split("\n").slice(0, 2);
  assert.deepEqual(forms, [
    "spillway slots list <postgres-url> [--json]",
    "spillway slots drop <postgres-url> <slot> [--wait] [--yes]",
  ]);
  const url = `('[^']*'|[^\\s'(),;]+)`;
  const end = "(?=[\\s),;]|$)";
  const list = new RegExp(`spillway slots list ${url}${end}`, "g");
  const drop = new RegExp(`spillway slots drop ${url} ([a-z0-9_]{1,63}|<slot>)${end}`, "g");
  let seen = 0;
  for (const finding of findings) {
    const fix = finding.fix ?? "";
    assert.doesNotMatch(fix, /s3cret/, fix);
    const matches = [...fix.matchAll(list), ...fix.matchAll(drop)];
    assert.equal(matches.length, fix.split("spillway slots").length - 1, fix);
    for (const [, word] of matches) {
      const quoted = word!.startsWith("'");
      if (!quoted) assert.match(word!, /^[A-Za-z0-9_@%+=:,./-]+$/, "a shell word");
      const shown = quoted ? word!.slice(1, -1) : word!;
      assert.equal(parseConnectionUrl(shown.replace("***", "pw")).database, "shop");
      seen++;
    }
  }
  return seen;
}

Deno.test("checkSlot: each fix that drops the slot names spillway slots drop <url> <slot>", () => {
  const config = pipeline(["failover: true"]);
  const cases: Finding[] = [
    ...checkSlot(config, server({}, [slot("orders_cdc", { slotType: "physical" })]), null),
    ...checkSlot(config, server({}, [slot("orders_cdc", { plugin: "test_decoding" })]), null),
    ...checkSlot(
      config,
      server({}, [slot("orders_cdc", { walStatus: "lost", invalidationReason: "wal_removed" })]),
      null,
    ),
    ...checkSlot(config, server({}, [slot("orders_cdc", { failover: false })]), null),
    ...checkSettings(config, server({ max_replication_slots: setting("1") }, [slot("other")])),
  ];
  assert.equal(assertSpillwayCommands(cases), 7);
});

Deno.test("checkSlot: a lost slot: drop it with spillway slots drop, the password hidden", () => {
  const findings = checkSlot(
    pipeline(),
    server({}, [slot("orders_cdc", { walStatus: "lost", invalidationReason: "wal_removed" })]),
    null,
  );
  assert.deepEqual(findings, [{
    level: "error",
    subject: 'slot "orders_cdc"',
    message:
      "is invalidated (wal_status lost, wal_removed): the WAL it needs is gone, so it can never stream again",
    fix:
      "drop it (spillway slots drop 'postgres://app:***@db.example:5432/shop' orders_cdc), let spillway create it again and re-snapshot the tables; raise max_slot_wal_keep_size to avoid a repeat (*** stands for the password)",
  }]);
});

Deno.test("checkSlot: a slot without failover: ALTER_REPLICATION_SLOT over psql with the pipeline's URL", () => {
  const findings = checkSlot(
    pipeline(["failover: true"]),
    server({}, [slot("orders_cdc", { failover: false })]),
    { name: "orders_pub", allTables: true, operations: ["insert"], tables: new Set(), names: [] },
  );
  const [warning] = findings.filter((f) => f.level === "warn");
  assert.equal(
    warning?.fix,
    "on a replication connection: psql 'postgres://app:***@db.example:5432/shop?replication=database' -c 'ALTER_REPLICATION_SLOT orders_cdc (FAILOVER true)'; or drop it (spillway slots drop 'postgres://app:***@db.example:5432/shop' orders_cdc) so that spillway creates it again with failover (*** stands for the password)",
  );
});

Deno.test("checkSlot: a missing slot with create_slot false: the SQL creates it with failover when asked", () => {
  const [finding] = checkSlot(
    pipeline(["create_slot: false", "failover: true"]),
    server({}),
    null,
  );
  assert.equal(
    finding?.fix,
    "SELECT pg_create_logical_replication_slot('orders_cdc', 'pgoutput', false, false, true); or set create_slot: true in test.yaml",
  );
});

Deno.test("dropSlotCommand: a URL without a password or shell characters stays as it is", () => {
  assert.equal(
    dropSlotCommand("postgres://app@127.0.0.1:5432/shop", "s"),
    "spillway slots drop postgres://app@127.0.0.1:5432/shop s",
  );
  assert.equal(
    dropSlotCommand("postgres://app:it's@db/shop?sslmode=require&application_name=x", "s"),
    `spillway slots drop 'postgres://app:***@db/shop?sslmode=require&application_name=x' s`,
  );
});
