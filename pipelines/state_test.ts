import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { type Lsn, parseLsn } from "../decoder/lsn.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import type { SlotRow } from "../postgres/catalog.ts";
import {
  checkRecordedSlot,
  type PipelineState,
  probeStateFile,
  readState,
  StateGate,
  StateRecorder,
  writeState,
} from "./state.ts";

const config = parsePipelineConfig(
  'source: {url: "postgres://u@h/app", slot: orders_cdc, publication: p}\ntables: {public.t: {}}\nsinks: [stdout: {}]',
  { file: "/srv/orders.yaml", env: {} },
);
const recorded: PipelineState = {
  systemId: "7300000000000000001",
  database: "app",
  slot: "orders_cdc",
  confirmedLsn: parseLsn("0/5000"),
  updatedAt: "2026-12-05T12:00:00.000Z",
};
const system = {
  systemId: recorded.systemId,
  timeline: 1,
  xlogPos: parseLsn("0/9000"),
  dbName: "app",
};
const slotAt = (lsn: string) => ({ slotName: "orders_cdc", confirmedFlushLsn: lsn } as SlotRow);

Deno.test("checkRecordedSlot: refuses what would skip changes, names the file and --reset-slot", () => {
  const refusal = (
    state: PipelineState | null,
    server: typeof system,
    slot: SlotRow | undefined,
  ): string | null => {
    try {
      checkRecordedSlot("/srv/orders.state.json", state, config, server, slot);
      return null;
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /orders\.state\.json/);
      assert.match(error.message, /spillway run \/srv\/orders\.yaml --reset-slot/);
      return error.message;
    }
  };
  // Fine: no file; a file of another slot (the config renamed it); the slot at or behind the
  // file (a PostgreSQL crash can move it back).
  assert.equal(refusal(null, system, undefined), null);
  assert.equal(refusal({ ...recorded, slot: "old_cdc" }, system, undefined), null);
  assert.equal(refusal(recorded, system, slotAt("0/5000")), null);
  assert.equal(refusal(recorded, system, slotAt("0/4000")), null);
  // Refused.
  assert.match(refusal(recorded, system, undefined)!, /is gone, though this pipeline streamed/);
  assert.match(refusal(recorded, system, slotAt("0/6000"))!, /is at 0\/6000, ahead of/);
  assert.match(
    refusal(recorded, { ...system, systemId: "42" }, slotAt("0/1"))!,
    /another cluster or database/,
  );
  assert.match(
    refusal(recorded, { ...system, dbName: "other" }, slotAt("0/1"))!,
    /another cluster or database/,
  );
  assert.match(
    refusal(recorded, { ...system, xlogPos: parseLsn("0/4FFF") }, slotAt("0/1"))!,
    /went back in time/,
  );
});

Deno.test("StateGate and StateRecorder: a position is allowed only once the file holds it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "p.state.json");
    const gate = new StateGate();
    gate.want(parseLsn("0/100")); // before the recorder exists: kept
    const allowedSeen: Lsn[] = [];
    const recorder = new StateRecorder(path, recorded, () => {}, (position) => {
      gate.recorded(position);
      allowedSeen.push(position);
    }, 10);
    await recorder.start(parseLsn("0/50"));
    assert.equal(gate.allowed, parseLsn("0/50"));
    gate.attach(recorder);
    gate.want(parseLsn("0/200"));
    assert.equal(gate.allowed, parseLsn("0/50"), "not before the write");
    await recorder.close();
    assert.equal(gate.allowed, parseLsn("0/200"));
    assert.equal((await readState(path))?.confirmedLsn, parseLsn("0/200"));
    assert.deepEqual(allowedSeen, [parseLsn("0/50"), parseLsn("0/200")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeState: writers and probes beside it never leave a torn or empty file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "p.state.json");
    await writeState(path, recorded);
    const work: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      work.push(writeState(path, { ...recorded, confirmedLsn: BigInt(i) as Lsn }));
      work.push(probeStateFile(path));
      work.push(readState(path).then((state) => assert.ok(state !== null)));
    }
    await Promise.all(work);
    assert.ok((await readState(path)) !== null);
    // No temporary file is left behind.
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["p.state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
