/**
 * `spillway types` against a real server: the row types it writes type-check with `deno check`
 * against a transform that uses them, agree with the decoder's value shapes, and make the
 * check fail once the transform uses a column that was dropped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { typesCommand } from "../cli/types.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { pipelineYaml } from "./_runner_util.ts";

const VALUES = fileURLToPath(new URL("../decoder/types/values.ts", import.meta.url));
const API = fileURLToPath(new URL("../transforms/api.ts", import.meta.url));

async function denoCheck(file: string): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: result.code, output: decode(result.stdout) + decode(result.stderr) };
}

Deno.test("spillway types: generated row types check a transform, match the decoder's shapes, and catch a dropped column", async () => {
  await using pg = await startPostgres();
  await pg.psql(`
    CREATE TYPE status AS ENUM ('new', 'paid', 'it''s shipped');
    CREATE DOMAIN positive AS numeric CHECK (VALUE > 0);
    CREATE TYPE address AS (street text, zip int4);
    CREATE TABLE order_lines (
      id bigint PRIMARY KEY,
      state status NOT NULL,
      amount positive,
      ship_to address,
      tags text[],
      during tstzrange,
      "Weird Name" interval,
      spot point,
      blob bytea NOT NULL,
      note text
    );
  `);
  const dir = await Deno.makeTempDir({ prefix: "spillway-types-" });
  try {
    const file = join(dir, "p.yaml");
    await Deno.writeTextFile(
      file,
      pipelineYaml({
        name: "types",
        url: pg.url(),
        slot: "types_slot",
        publication: "types_pub",
        tables: { "public.order_lines": "{}" },
      }),
    );
    const lines: string[] = [];
    assert.equal(await typesCommand([file], { stdout: (line) => lines.push(line) }), 0);
    assert.deepEqual(lines, [`${join(dir, "types", "public.ts")}: OrderLines`]);
    const generated = await Deno.readTextFile(join(dir, "types", "public.ts"));
    for (
      const expected of [
        "id: bigint;",
        `state: "new" | "paid" | "it's shipped";`,
        "amount: string | null;",
        "ship_to: AddressType | null;",
        "tags: PgArray<string> | null;",
        "during: PgRange<string> | null;",
        `"Weird Name": PgInterval | null;`,
        "spot: Point | null;",
        "blob: Uint8Array;",
        "street: string | null;",
        "zip: number | null;",
      ]
    ) assert.ok(generated.includes(expected), `${expected}\n${generated}`);

    // A transform that uses the types type-checks; the shapes agree with the decoder's.
    const transform = join(dir, "orders.ts");
    await Deno.writeTextFile(
      transform,
      `import { defineTransform } from ${JSON.stringify(API)};
import type { OrderLines } from "./types/public.ts";
import type { PgInterval as Decoded, Point as DecodedPoint } from ${JSON.stringify(VALUES)};
import type { PgInterval, Point } from "./types/_pg.ts";
const a: Decoded = {} as PgInterval, b: PgInterval = {} as Decoded;
const c: DecodedPoint = {} as Point, d: Point = {} as DecodedPoint;
export default defineTransform<OrderLines>({
  change(event) {
    if (event.after?.state === "paid" && event.after.note !== null) {
      const zip: number | null | undefined = event.after.ship_to?.zip;
      return { ...event, after: { ...event.after, zip, months: event.after["Weird Name"]?.months } };
    }
    return event;
  },
});
export { a, b, c, d };
`,
    );
    const ok = await denoCheck(transform);
    assert.equal(ok.code, 0, ok.output);

    // The column goes; the types are written again; the transform no longer checks.
    await pg.psql("ALTER TABLE order_lines DROP COLUMN note");
    assert.equal(await typesCommand([file], { stdout: () => {} }), 0);
    const failed = await denoCheck(transform);
    assert.notEqual(failed.code, 0);
    assert.match(failed.output, /Property 'note' does not exist on type 'OrderLines'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
