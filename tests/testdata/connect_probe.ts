/**
 * Connects with the options given as JSON in the first argument and prints, as JSON, whether
 * the server sees the session as TLS-encrypted, or the error's class and message. Tests run it
 * as a child process when the outcome depends on this process's environment (HOME): test
 * modules running in parallel share their process's environment, so a test must not change it.
 *
 * @module
 */

import { PgConnection } from "../../postgres/connection.ts";

try {
  const connection = await PgConnection.connect(JSON.parse(Deno.args[0]!));
  try {
    const [row] = await connection.queryObjects(
      "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()",
    );
    console.log(JSON.stringify({ ssl: row?.ssl === "t" }));
  } finally {
    await connection.close();
  }
} catch (error) {
  const { constructor, message } = error as Error;
  console.log(JSON.stringify({ error: { class: constructor.name, message } }));
}
