/**
 * Pipeline configuration: one YAML file describes a source, the tables to follow, how
 * each is routed and transformed, and the sinks.
 *
 * Parsing is strict and complete. Every problem in a file is reported at once, sorted
 * by position, one per line, in the form
 * `orders.yaml:12:5: "sinks[0].file.rotate_bytes": expected a size like 100MB, found "big"`.
 * Unknown keys are errors with a "did you mean" suggestion. Every default is filled in,
 * so the runner never looks for a missing value.
 *
 * The file is read as YAML 1.2 (core schema): `on`, `off`, `yes` and `no` are strings,
 * only `true` and `false` are booleans.
 *
 * `${NAME}` and `${NAME:-default}` in scalar values are replaced with environment
 * variables (`:-` also applies when the variable is empty; `$${` writes a literal `${`).
 * A substituted value takes the type its field expects: `capacity: "${QUEUE_CAPACITY}"`
 * with `QUEUE_CAPACITY=500` is the number 500, `publication: ${PUB}` with `PUB=123` the
 * string "123", and `${START_LSN:-}` with nothing set is `null`. (Inside a flow map
 * `{ ... }` a `${...}` must be quoted, since braces end plain values there.) A value
 * written without a variable keeps its YAML type, so `capacity: "500"` is an error. Keys
 * are not interpolated.
 *
 * {@linkcode pipelineJsonSchema} gives the file's JSON Schema, for editors.
 *
 * @module
 */

export * from "./types.ts";
export { loadPipelineConfig, parsePipelineConfig } from "./load.ts";
export {
  DEBEZIUM_UNAVAILABLE_VALUE,
  matchRoute,
  matchTable,
  publishesAllTables,
  type RouteRule,
} from "./tables.ts";
export { pipelineJsonSchema } from "./schema.ts";
export * from "./connect.ts";
