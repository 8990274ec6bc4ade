/**
 * Offline cost of the transform stage on rows shaped like the `orders` table: what
 * `TransformHost.apply` adds per row, with the transforms of `bench/transforms.ts`, on batches
 * of the size the runner's queue hands on (2,048 records: half its default capacity), and where
 * that time goes: making the inputs, the Worker round trip (structured clone both ways), the
 * hook, checking the outputs. Also, per batch, the gaps the per-event watchdog counts against
 * the first and the last item: the request before the first item runs, and the reply after the
 * last one ran (a `probe` transform stamps when each item runs).
 *
 *     deno run -A --unstable-worker-options bench/_transform_offline.ts [rows] [--batch N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { parsePipelineConfig } from "../config/mod.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import type { SinkRecord } from "../events.ts";
import { transactionOf, type WorkItem } from "../transforms/hooks.ts";
import { outputRecord, TransformInputs } from "../transforms/convert.ts";
import { TransformHost } from "../transforms/host.ts";
import { loadTransform } from "../transforms/loader.ts";
import { TransformWorker } from "../transforms/worker.ts";
import { median } from "./_common.ts";
import { orderRecords, ORDERS_RELATION } from "./_orders_records.ts";
import { TRANSFORM_SOURCES } from "./transforms.ts";

/** Stamps when each item runs (µs since the epoch), in a header. */
const PROBE_SOURCE = `import { defineTransform } from "spillway";

export default defineTransform({
  change: (event) => ({
    ...event,
    headers: { ran: String((performance.timeOrigin + performance.now()) * 1000) },
  }),
});
`;

const REPS = 3;

function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

function perRow(ms: number, rows: number): string {
  return `${(ms * 1000 / rows).toFixed(2)} µs/row`;
}

/** Runs `step` on every batch, `REPS` times; the median total in ms. */
async function timed(
  batches: readonly SinkRecord[][],
  step: (batch: SinkRecord[]) => unknown,
): Promise<number> {
  const totals: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const started = performance.now();
    for (const batch of batches) await step(batch);
    totals.push(performance.now() - started);
  }
  return median(totals);
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { batch: { type: "string", default: "2048" } },
    allowPositionals: true,
  });
  const rows = Number(positionals[0] ?? 200_000);
  const size = Number(values.batch);
  const records = orderRecords(rows);
  const batches: SinkRecord[][] = [];
  for (let offset = 0; offset < rows; offset += size) {
    batches.push(records.slice(offset, offset + size));
  }
  const folder = await Deno.makeTempDir({ prefix: "spillway-transform-offline-" });
  const sources: Record<string, string> = { ...TRANSFORM_SOURCES, probe: PROBE_SOURCE };
  for (const [name, source] of Object.entries(sources)) {
    await Deno.writeTextFile(join(folder, `${name}.ts`), source);
  }
  const types = new TypeRegistry();
  try {
    console.log(`${rows} rows in batches of ${size}, median of ${REPS}`);
    // 1. The whole stage, as the runner calls it.
    for (const name of Object.keys(TRANSFORM_SOURCES)) {
      const yaml = [
        "source: { url: postgres://localhost/db, slot: s, publication: p }",
        `tables: { "public.*": { transform: ${name}.ts } }`,
        "transforms: { on_error: skip }",
        "sinks: [ { stdout: {} } ]",
      ].join("\n");
      const config = parsePipelineConfig(yaml, { file: join(folder, "bench.yaml"), env: {} });
      const failures: string[] = [];
      const host = await TransformHost.start({
        config,
        types,
        log: (level, message, fields) => {
          if (level === "warn" && message === "Transform failed") {
            failures.push(String(fields?.error));
          }
        },
        watch: false,
      });
      let out = 0;
      const ms = await timed(batches, async (batch) => {
        out += (await host.apply(batch)).records.length;
      });
      await host.close();
      const failed = failures.length === 0
        ? ""
        : `; ${failures.length} failure(s), ${rows * REPS - out} rows skipped, first: ${
          failures[0]
        }`;
      console.log(`TransformHost.apply, ${name}: ${perRow(ms, rows)}${failed}`);
    }
    // 2. Its parts, with the identity transform.
    const inputs = new TransformInputs(types);
    const relation = inputs.relation(ORDERS_RELATION);
    const itemsOf = (batch: SinkRecord[]): WorkItem[] =>
      batch.map((record) => {
        if (record.kind !== "change") throw new Error("change records only");
        const event = inputs.event(record);
        if (event.op === "t") throw new Error("inserts only");
        return { kind: "change", event, relation, transaction: transactionOf(event.source) };
      });
    console.log(
      `  inputs (TransformInputs.event + item): ${perRow(await timed(batches, itemsOf), rows)}`,
    );
    const itemBatches = batches.map(itemsOf);
    let at = 0;
    const next = () => itemBatches[at++ % itemBatches.length]!;
    console.log(
      `  structuredClone(items): ${
        perRow(await timed(batches, () => structuredClone(next())), rows)
      }`,
    );
    const loaded = await loadTransform(join(folder, "identity.ts"));
    for (const timeoutMs of [200, 0]) {
      const worker = await TransformWorker.start(loaded, { timeoutMs });
      const ms = await timed(batches, () => worker.run(next()));
      console.log(`  Worker round trip, identity, timeout ${timeoutMs} ms: ${perRow(ms, rows)}`);
      await worker.stop();
    }
    const worker = await TransformWorker.start(loaded, { timeoutMs: 0 });
    const results = await Promise.all(itemBatches.map((items) => worker.run(items)));
    await worker.stop();
    at = 0;
    const check = (batch: SinkRecord[]) => {
      const batchResults = results[at++ % results.length]!;
      for (const [i, record] of batch.entries()) {
        const result = batchResults[i]!;
        if (!result.ok || record.kind !== "change") throw new Error("identity failed");
        for (const output of result.out) outputRecord(record, output);
      }
    };
    console.log(`  outputRecord on the results: ${perRow(await timed(batches, check), rows)}`);
    // 3. What the watchdog counts against the first and the last item of a batch.
    const probe = await TransformWorker.start(await loadTransform(join(folder, "probe.ts")), {
      timeoutMs: 200,
    });
    const before: number[] = [];
    const after: number[] = [];
    for (const items of itemBatches) {
      const sent = nowMicros();
      const ran = await probe.run(items);
      const received = nowMicros();
      const stamp = (result: (typeof ran)[number] | undefined) => {
        if (result === undefined || !result.ok) throw new Error("the probe failed");
        const out = result.out[0];
        if (out === undefined || !("headers" in out)) throw new Error("the probe stamped nothing");
        return Number(out.headers?.ran);
      };
      before.push((stamp(ran[0]) - sent) / 1000);
      after.push((received - stamp(ran[ran.length - 1])) / 1000);
    }
    await probe.stop();
    const show = (list: number[]) =>
      `median ${median(list).toFixed(1)} ms, max ${Math.max(...list).toFixed(1)} ms`;
    console.log(`  request -> first item runs: ${show(before)}`);
    console.log(`  last item ran -> reply received: ${show(after)}`);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
