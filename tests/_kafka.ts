/**
 * Reading what the Kafka sink wrote, as a consumer sees it: a `read_committed` consumer in a
 * fresh group, from the beginning of each topic (`tailTopics` of the harness).
 *
 * @module
 */

import { join } from "node:path";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { type ConsumedRecord, tailTopics } from "../testing/kafka.ts";
import { itemsPipelineYaml } from "./_runner_util.ts";

/** One record as consumed. */
export type Consumed = ConsumedRecord;

/**
 * The records of `topics` from the beginning, read_committed, until `count` arrived (then a
 * short quiet time, `settleMs`, to catch any extra) or `timeoutMs` passed.
 */
export async function consume(
  brokers: string[],
  topics: string[],
  count: number,
  options: { timeoutMs?: number; settleMs?: number } = {},
): Promise<Consumed[]> {
  const seen: Consumed[] = [];
  const done = new AbortController();
  const timeout = setTimeout(() => done.abort(), options.timeoutMs ?? 60_000);
  let settling = false;
  try {
    await tailTopics(brokers, topics, (record) => {
      seen.push(record);
      if (seen.length >= count && !settling) {
        settling = true;
        setTimeout(() => done.abort(), options.settleMs ?? 300);
      }
    }, done.signal);
  } finally {
    clearTimeout(timeout);
  }
  return seen;
}

/** The records of one topic, in offset order per partition (partitions in order). */
export function ordered(records: Consumed[], topic: string): Consumed[] {
  return records.filter((r) => r.topic === topic).sort((a, b) =>
    a.partition - b.partition || a.offset - b.offset
  );
}

/**
 * A transform that retypes `price` (numeric → number, declared `float8`), drops `secret`, adds `price_cents`
 * (declared `int8`) and `tags` (inferred `text[]`), and passes deletes through: the shape tests'.
 */
export const RESHAPING_TRANSFORM = `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; price: string | null; note: string | null; secret: string | null }>({
  output: { price: "float8", price_cents: "int8" },
  change(event) {
    if (event.after === null) return event;
    const { secret: _secret, price, ...rest } = event.after;
    return {
      ...event,
      after: {
        ...rest,
        price: price === null ? null : Number(price),
        price_cents: price === null ? null : BigInt(Math.round(Number(price) * 100)),
        tags: ["a", rest.note ?? "none"],
      },
    };
  },
});
`;

/**
 * Table `${name}_items (id int PRIMARY KEY, price numeric(10,2), note text, secret text)`, the
 * {@linkcode RESHAPING_TRANSFORM} in `dir`, and the YAML of its pipeline into `sink` (to be
 * started with a file in `dir`).
 */
export async function reshapingPipeline(
  pg: PgServer,
  name: string,
  dir: string,
  sink: string,
): Promise<string> {
  await pg.psql(
    `CREATE TABLE ${name}_items (id int PRIMARY KEY, price numeric(10,2), note text, secret text)`,
  );
  await Deno.writeTextFile(join(dir, "t.ts"), RESHAPING_TRANSFORM);
  return itemsPipelineYaml(pg, name, {
    tables: { [`public.${name}_items`]: "{ transform: t.ts }" },
    sinks: [sink],
  });
}
