/**
 * Benchmark helper: runs Spillway's CLI (`main.ts`) with a memory sampler inside the process,
 * and writes what it saw (`bench/_memory.ts`) as JSON next to the pipeline file
 * (`<pipeline>.memory.json`) when the command ends. `bench kafka --memory` runs Spillway
 * through this instead of `main.ts`.
 *
 * `SPILLWAY_BENCH_SNAP_S=<s>` also writes a V8 heap snapshot (what is live, after a full
 * collection) `<s>` seconds after the start, as `<pipeline>.<s>s.heapsnapshot`: the drain stops
 * while it is written (seconds) and the snapshot's own memory counts in the peaks, so that run's
 * times and peaks say nothing.
 *
 *     deno run -A --unstable-worker-options bench/_memory_main.ts run pipeline.yaml
 *
 * @module
 */

import { main } from "../main.ts";
import { heapSnapshotFromEnv, memorySampler } from "./_memory.ts";

const pipelineFile = Deno.args.at(-1) ?? "spillway";
await heapSnapshotFromEnv((seconds) => `${pipelineFile}.${seconds}s.heapsnapshot`);
const sampler = memorySampler();
const code = await main(Deno.args);
await Deno.writeTextFile(`${pipelineFile}.memory.json`, JSON.stringify(sampler.stop()));
Deno.exit(code);
