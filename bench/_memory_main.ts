/**
 * Benchmark helper: runs Spillway's CLI (`main.ts`) with a memory sampler inside the process,
 * and writes what it saw (`bench/_memory.ts`) as JSON next to the pipeline file
 * (`<pipeline>.memory.json`) when the command ends. `bench kafka --memory` runs Spillway
 * through this instead of `main.ts`.
 *
 *     deno run -A --unstable-worker-options bench/_memory_main.ts run pipeline.yaml
 *
 * @module
 */

import { main } from "../main.ts";
import { memorySampler } from "./_memory.ts";

const sampler = memorySampler();
const code = await main(Deno.args);
const pipelineFile = Deno.args.at(-1) ?? "spillway";
await Deno.writeTextFile(`${pipelineFile}.memory.json`, JSON.stringify(sampler.stop()));
Deno.exit(code);
