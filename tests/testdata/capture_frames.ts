/**
 * Captures real pgoutput frames from a harness server into
 * `tests/testdata/pgoutput_frames.bin`, for unit and fuzz tests that need bytes a
 * real server wrote. Run: `deno run -A tests/testdata/capture_frames.ts`.
 *
 * File format, repeated: `UInt8 protoVersion, UInt8 inStreamBlock (before this frame),
 * UInt32 length, Byte[length]`. Read it with `readCapturedFrames` in `_captured.ts`.
 *
 * @module
 */

import { PgConnection } from "../../postgres/connection.ts";
import { parseConnectionUrl } from "../../postgres/connection_string.ts";
import { PgoutputDecoder } from "../../decoder/pgoutput.ts";
import { startPostgres } from "../../testing/embedded_postgres.ts";
import { sqlConnection } from "../_replication.ts";

const SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2), mood mood,
  qty posint, tags text[], doc jsonb, at timestamptz, blob bytea);
CREATE TABLE full_items (id int, big text);
ALTER TABLE full_items REPLICA IDENTITY FULL;
CREATE TABLE other (id int PRIMARY KEY);
CREATE PUBLICATION cap FOR ALL TABLES;
`;

const CHANGES = [
  `INSERT INTO items VALUES (1, 'caf\u00e9', 9.99, 'happy', 3, '{a,"b c",NULL}', '{"k": [1, 2]}', now(), '\\x00ff0a')`,
  `UPDATE items SET price = 10.50 WHERE id = 1`,
  `UPDATE items SET id = 2 WHERE id = 1`,
  `INSERT INTO full_items VALUES (1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i))`,
  `UPDATE full_items SET id = 2`,
  `DELETE FROM full_items`,
  `DELETE FROM items`,
  `INSERT INTO other VALUES (1); TRUNCATE other, items RESTART IDENTITY CASCADE`,
  `SELECT pg_logical_emit_message(true, 'spillway', 'in a transaction')`,
  `SELECT pg_logical_emit_message(false, 'spillway', '\\x0a00ff'::bytea)`,
  `BEGIN; INSERT INTO other SELECT generate_series(10, 1200); SAVEPOINT a;
   INSERT INTO other SELECT generate_series(1201, 1700); ROLLBACK TO a; COMMIT`,
  `BEGIN; INSERT INTO other SELECT generate_series(5000, 6200); ROLLBACK`,
  `BEGIN; INSERT INTO other VALUES (9001); PREPARE TRANSACTION 'g1'`,
  `COMMIT PREPARED 'g1'`,
  `BEGIN; INSERT INTO other VALUES (9002); PREPARE TRANSACTION 'g2'`,
  `ROLLBACK PREPARED 'g2'`,
  `ALTER TABLE other ADD COLUMN note text; INSERT INTO other VALUES (9003, 'after ddl')`,
];

const out: number[] = [];
await using pg = await startPostgres({ version: 17 });
const sql = await sqlConnection(pg);
await sql.query(SCHEMA);
const slots = [{ slot: "cap_text", binary: false }, { slot: "cap_binary", binary: true }];
const connections: PgConnection[] = [];
for (const { slot } of slots) {
  const connection = await PgConnection.connect({
    ...parseConnectionUrl(pg.url()),
    sslmode: "disable",
    replication: "database",
    parameters: { logical_decoding_work_mem: "64kB" },
  });
  await connection.createReplicationSlot(slot, { snapshot: "nothing", twoPhase: true });
  connections.push(connection);
}
for (const statement of CHANGES) await sql.query(statement);

for (const [i, { slot, binary }] of slots.entries()) {
  const connection = connections[i]!;
  const stream = await connection.startReplication({
    slot,
    pgoutput: {
      protoVersion: 4,
      publicationNames: ["cap"],
      streaming: "parallel",
      twoPhase: true,
      messages: true,
      binary,
    },
  });
  const decoder = new PgoutputDecoder({ protoVersion: 4 });
  let done = false;
  let insertsInRun = 0; // keeps the file small: long runs of inserts are cut to 20
  while (!done) {
    const batch = await stream.nextBatch();
    if (batch === null) throw new Error("stream ended");
    for (const xlog of batch) {
      const inBlock = decoder.inStreamBlock;
      const message = decoder.decode(xlog.data);
      insertsInRun = message.type === "Insert" ? insertsInRun + 1 : 0;
      if (insertsInRun > 20) continue;
      out.push(4, inBlock ? 1 : 0);
      const length = xlog.data.byteLength;
      out.push(
        (length >>> 24) & 0xff,
        (length >>> 16) & 0xff,
        (length >>> 8) & 0xff,
        length & 0xff,
      );
      for (const byte of xlog.data) out.push(byte);
      if (
        message.type === "Insert" &&
        message.newTuple.some((v) => typeof v === "string" && v === "after ddl")
      ) {
        done = true;
      }
      if (
        message.type === "Insert" && binary && message.relationId && message.newTuple.length === 2
      ) {
        const note = message.newTuple[1];
        if (note instanceof Uint8Array && new TextDecoder().decode(note) === "after ddl") {
          done = true;
        }
      }
    }
  }
  await stream.stop();
  await connection.close();
}
await sql.close();
const file = new URL("./pgoutput_frames.bin", import.meta.url);
await Deno.writeFile(file, new Uint8Array(out));
console.log(`Wrote ${out.length} bytes to ${file.pathname}`);
