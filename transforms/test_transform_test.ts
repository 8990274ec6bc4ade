import assert from "node:assert/strict";
import { defineTransform } from "./api.ts";
import { type TestInput, testTransform } from "./test_transform.ts";

const source = (xid: number) => ({
  schema: "public",
  table: "orders",
  relid: 16384,
  lsn: `0/${xid}0`,
  commitLsn: `0/${xid}F`,
  xid,
  commitTime: "2026-12-05T12:00:00.000000Z",
});

Deno.test("testTransform: hooks in order with begin/commit per transaction; fan-out, drops, truncates and messages", async () => {
  const calls: string[] = [];
  const transform = defineTransform<{ id: number }>({
    setup(ctx) {
      ctx.state.n = 0;
      calls.push("setup");
    },
    begin: (tx) => void calls.push(`begin ${tx.xid}`),
    change(event, ctx) {
      ctx.state.n = (ctx.state.n as number) + 1;
      calls.push(`change ${event.after?.id} of ${ctx.relation?.table} in ${ctx.transaction?.xid}`);
      if (event.after?.id === 2) return null;
      if (event.after?.id === 3) return [event, { ...event, topic: "copy" }];
      return event;
    },
    truncate: (event) => event,
    commit: (tx, ctx) => {
      calls.push(`commit ${tx.xid}`);
      ctx.log("info", "committed", { xid: tx.xid });
    },
    teardown: () => void calls.push("teardown"),
  });
  const change = (xid: number, id: number): TestInput => ({
    op: "c",
    source: source(xid),
    before: null,
    after: { id },
    unchanged: [],
  });
  const result = await testTransform(transform, [
    change(7, 1),
    change(7, 2),
    change(8, 3),
    { op: "t", source: source(8), cascade: false, restartIdentity: false },
    { op: "m", transactional: false, prefix: "p", content: new Uint8Array([1]), lsn: "0/99" },
  ]);
  assert.deepEqual(result.events.map((e) => [e.after?.id, e.topic]), [
    [1, undefined],
    [3, undefined],
    [3, "copy"],
  ]);
  assert.deepEqual(result.others.map((e) => e.op), ["t", "m"]);
  assert.deepEqual(calls, [
    "setup",
    "begin 7",
    "change 1 of orders in 7",
    "change 2 of orders in 7",
    "commit 7",
    "begin 8",
    "change 3 of orders in 8",
    "commit 8",
    "teardown",
  ]);
  assert.deepEqual(result.logs.map((l) => l.fields), [{ xid: 7 }, { xid: 8 }]);
  assert.deepEqual(result.state, { n: 3 });
});

Deno.test("testTransform: a throw and an invalid return reach the test as errors", async () => {
  const event: TestInput = {
    op: "u",
    source: source(7),
    before: null,
    after: { id: 9n },
    unchanged: [],
  };
  await assert.rejects(
    testTransform(
      defineTransform({
        change: () => {
          throw new Error("boom");
        },
      }),
      [event],
    ),
    /boom/,
  );
  await assert.rejects(
    testTransform(defineTransform({ change: () => ({ nope: 1n }) as never }), [event]),
    /change\(\) returned \{"nope":"1n"\}: expected an event/,
  );
});

Deno.test("testTransform: events are read-only, as in a pipeline: changing one throws and says to return a copy", async () => {
  const mutating = defineTransform<{ id: number; total?: number }>({
    change(event) {
      event.after!.total = 1;
      return event;
    },
  });
  const source = {
    schema: "public",
    table: "t",
    relid: 1,
    lsn: "0/1",
    commitLsn: "0/2",
    xid: 7,
    commitTime: "2026-12-05T12:00:00Z",
  };
  const input = { op: "c" as const, source, before: null, after: { id: 1 }, unchanged: [] };
  await assert.rejects(testTransform(mutating, [input]), TypeError);
  assert.equal(Object.isFrozen(input.after), false, "the caller's object is left alone");
});
