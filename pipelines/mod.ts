/**
 * The engine: route → queue → every sink → confirm. {@linkcode runPipeline} composes a
 * pipeline from its configuration (types, sinks, runner, metrics, health, HTTP);
 * {@linkcode PipelineRunner} reads the source, writes every sink and confirms to PostgreSQL
 * only what every sink has made durable.
 *
 * @module
 */

export * from "./runner.ts";
export * from "./run_pipeline.ts";
export * from "./route.ts";
export * from "./queue.ts";
export * from "./monitor.ts";
export * from "./toast.ts";
export * from "./state.ts";
