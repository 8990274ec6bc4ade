/**
 * Offline cost of rendering change records as JSON lines (the file and stdout sinks' work),
 * on rows shaped like `bench/pipeline.ts`'s `orders` table.
 *
 *     deno run -A bench/_render_offline.ts [rows] [--file]
 *
 * @module
 */

import { EVENT_RELATION } from "../events.ts";
import { JsonRenderer } from "../formats/json.ts";
import { writeJsonLine } from "../formats/json.ts";
import { JsonWriter } from "../formats/json_writer.ts";
import type { SinkRecord } from "../events.ts";
import { orderRecords } from "./_orders_records.ts";

const rows = Number(Deno.args[0] ?? 200_000);
const records = orderRecords(rows);

const renderer = new JsonRenderer();
const encoder = new TextEncoder();
/** The same line by the object route: build the object, then `JSON.stringify`. */
function objectLine(record: SinkRecord): string {
  if (record.kind !== "change") throw new Error("change records only");
  return JSON.stringify({
    topic: record.topic,
    key: renderer.row(record.key, record.event[EVENT_RELATION]),
    ...renderer.changeEvent(record.event),
  });
}
const out = new JsonWriter();
for (let rep = 0; rep < 5; rep++) {
  let started = performance.now();
  let bytes = 0;
  for (let offset = 0; offset < records.length; offset += 5000) {
    out.reset();
    for (const record of records.slice(offset, offset + 5000)) {
      writeJsonLine(out, record, false, renderer);
    }
    bytes += out.length;
  }
  const writerMs = performance.now() - started;
  started = performance.now();
  for (let offset = 0; offset < records.length; offset += 5000) {
    let text = "";
    for (const record of records.slice(offset, offset + 5000)) text += `${objectLine(record)}\n`;
    bytes -= encoder.encode(text).byteLength;
  }
  const objectMs = performance.now() - started;
  if (bytes !== 0) throw new Error("the two routes wrote different byte counts");
  console.log(
    `rep ${rep + 1}: ${rows} rows: writer ${(writerMs * 1000 / rows).toFixed(2)} µs/row, ` +
      `object + stringify + encode ${(objectMs * 1000 / rows).toFixed(2)} µs/row`,
  );
}
out.reset();
writeJsonLine(out, records[0]!, false, renderer);
if (out.text() !== `${objectLine(records[0]!)}\n`) throw new Error("the two routes differ");
console.log(out.text().trimEnd());

if (Deno.args.includes("--file")) {
  // The file sink on the same records: rendering, write(2) and fsync per durable batch.
  const { FileSink } = await import("../sinks/file.ts");
  for (const durable of [true, false]) {
    const dir = await Deno.makeTempDir();
    const sink = new FileSink({ path: `${dir}/out.jsonl` });
    await sink.open();
    const started = performance.now();
    for (let offset = 0; offset < records.length; offset += 5000) {
      await sink.write(records.slice(offset, offset + 5000), { durable });
    }
    await sink.close();
    console.log(
      `file sink, every batch durable: ${durable}: ${
        (performance.now() - started).toFixed(0)
      } ms, ` +
        `${sink.fsyncs} fsyncs`,
    );
    await Deno.remove(dir, { recursive: true });
  }
}
