import assert from "node:assert/strict";
import { pipeline, server, setting, slot } from "./_testing.ts";
import { checkSettings } from "./server.ts";

Deno.test("checkSettings: a short wal_sender_timeout is ok, noting the clamped status interval", () => {
  for (
    const [timeout, source, message] of [
      [
        "60000",
        ["status_interval: 40s"],
        "1m; status updates every 10s: source.status_interval (40s) is clamped to a third of the timeout, 10s at most",
      ],
      [
        "6000",
        [],
        "6s; status updates every 2s: source.status_interval (10s) is clamped to a third of the timeout, 10s at most",
      ],
      ["60000", [], "1m (status updates every 10s)"],
      ["60000", ["status_interval: 2s"], "1m (status updates every 2s)"],
    ] as const
  ) {
    const findings = checkSettings(
      pipeline([...source]),
      server({ wal_sender_timeout: setting(timeout, "ms") }),
    );
    const found = findings.filter((f) => f.subject === "wal_sender_timeout");
    assert.deepEqual(found, [{ level: "ok", subject: "wal_sender_timeout", message }]);
  }
});

Deno.test("checkSettings: a wal_sender_timeout of 0 warns: a vanished reader keeps the slot", () => {
  const findings = checkSettings(pipeline(), server({ wal_sender_timeout: setting("0", "ms") }));
  const [found] = findings.filter((f) => f.subject === "wal_sender_timeout");
  assert.equal(found?.level, "warn");
  assert.match(found?.fix ?? "", /^ALTER SYSTEM SET wal_sender_timeout = '60s'/);
});

Deno.test("checkSettings: all slots in use: the fix names spillway slots commands that exist, without the password", () => {
  const findings = checkSettings(
    pipeline(),
    server({ max_replication_slots: setting("2") }, [slot("a"), slot("b")]),
  );
  const [found] = findings.filter((f) => f.subject === "max_replication_slots");
  assert.equal(found?.level, "warn");
  assert.equal(
    found?.fix,
    "drop a slot nobody reads (spillway slots list 'postgres://app:***@db.example:5432/shop' lists this database's, spillway slots drop 'postgres://app:***@db.example:5432/shop' <slot> drops one), or raise max_replication_slots and restart PostgreSQL (*** stands for the password)",
  );
});
