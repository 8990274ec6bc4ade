/**
 * Pipeline YAML → a typed {@linkcode PipelineConfig}: parsing, validation with file:line:col
 * errors, and the table matching rules.
 *
 * @module
 */

export * from "./config.ts";
export * from "./connect.ts";
