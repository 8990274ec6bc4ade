/** The registry client's handling of credentials in its URL (no registry needed). */

import assert from "node:assert/strict";
import { RegistryError, SchemaRegistryClient } from "./registry.ts";

Deno.test("SchemaRegistryClient: credentials in the URL go to basic auth and never into messages", async () => {
  const client = new SchemaRegistryClient({
    url: "http://spillway:s3cr3t-pw@127.0.0.1:1/apis/ccompat/v7/",
    timeoutMs: 2_000,
  });
  try {
    assert.equal(client.url, "http://127.0.0.1:1/apis/ccompat/v7");
    const error = await client.register("t-value", { type: "string" }).then(() => null, (e) => e);
    assert.ok(error instanceof RegistryError);
    assert.equal(error.retriable, true);
    assert.doesNotMatch(error.message, /s3cr3t/);
    assert.match(error.message, /127\.0\.0\.1:1/);
  } finally {
    client.close();
  }
});
