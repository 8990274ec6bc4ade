/**
 * The JSON Schema of a pipeline file, for editors: built from the same field tables the
 * parser reads with, so a key, its type, its default and its doc are written once.
 *
 * @module
 */

import { PIPELINE } from "./load.ts";
import { sectionSchema } from "./_fields.ts";
import { VARIABLE_DEFINITION, VARIABLE_SCHEMA } from "./_readers.ts";

/**
 * The JSON Schema (draft-07) of a pipeline file: every key with its `description`, its
 * `default` as it would be written, the choices of a key as an `enum`, and no unknown
 * keys. Durations and sizes may be written as text (`10s`, `64MB`) or as numbers (ms,
 * bytes), and any scalar may be a `${VAR}` string. The schema accepts every file the
 * parser does; the parser checks more (such as settings that contradict each other).
 * `spillway schema` prints it; the repository keeps a copy in `pipeline.schema.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipelineJsonSchema } from "./schema.ts";
 * const schema = pipelineJsonSchema() as {
 *   required: string[];
 *   properties: { queue: { properties: { capacity: { default: number } } } };
 * };
 * assert.deepEqual(schema.required, ["source", "tables", "sinks"]);
 * assert.equal(schema.properties.queue.properties.capacity.default, 1_024);
 * ```
 */
export function pipelineJsonSchema(): object {
  return structuredClone({
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "Spillway pipeline",
    description: "One PostgreSQL change-data-capture pipeline: a source, the tables to " +
      "follow, and the sinks their changes go to.",
    ...sectionSchema(PIPELINE),
    definitions: { [VARIABLE_DEFINITION]: VARIABLE_SCHEMA },
  });
}
