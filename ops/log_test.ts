import assert from "node:assert/strict";
import { createLogger, MAX_SHOWN } from "./log.ts";

const NOW = () => new Date("2026-12-05T12:00:00Z");

Deno.test("log: a value with a newline cannot forge a text line; control characters are escaped", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: NOW });
  const forged = "orders\n2026-12-05T12:00:00.000Z ERROR Slot dropped";
  log("info", "Table added\u001b[2J", { table: forged, bell: "\u0007" });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes("\n"));
  assert.equal(
    lines[0],
    "2026-12-05T12:00:00.000Z INFO  Table added\\u001b[2J table=orders\\n2026-12-05T12:00:00.000Z ERROR Slot dropped bell=\\u0007",
  );
});

Deno.test("log: a huge value is cut in text and JSON lines, saying how much was left out", () => {
  const huge = "v".repeat(30 * 1024 * 1024);
  for (const json of [false, true]) {
    const lines: string[] = [];
    const log = createLogger({ json, write: (line) => lines.push(line), now: NOW });
    log("warn", huge, { value: huge });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.length < 3 * MAX_SHOWN, `${lines[0]!.length} characters`);
    assert.match(lines[0]!, new RegExp(`… \\(${huge.length - MAX_SHOWN} more characters\\)`));
  }
});
