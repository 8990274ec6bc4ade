/**
 * The schema-registry harness against a real Apicurio Registry: through its Confluent-compatible
 * API it registers an Avro schema, enforces BACKWARD compatibility (an added field needs a
 * default; a registration that breaks it answers 409), restarts on the same port with empty
 * in-memory storage, and stops without leaving its process behind. Slow on a cold cache: the
 * first run fetches the registry (about 160 MB) with Maven.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REGISTRY_VERSION, startRegistry } from "../testing/registry.ts";

const SUBJECT = "t-value";
const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";

const V1 = { type: "record", name: "T", fields: [{ name: "a", type: "int" }] };
/** Adds `b` without a default: readers of V2 cannot read data written with V1. */
const V2_BREAKING = {
  type: "record",
  name: "T",
  fields: [{ name: "a", type: "int" }, { name: "b", type: "string" }],
};
/** Adds `b` as an optional field with default null: BACKWARD compatible. */
const V2_OPTIONAL = {
  type: "record",
  name: "T",
  fields: [{ name: "a", type: "int" }, { name: "b", type: ["null", "string"], default: null }],
};

/** One request to the registry's ccompat API; the body is read in full. */
async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": CONTENT_TYPE },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON: keep the text */ }
  return { status: res.status, json };
}

/** The body registering or testing `schema` (the schema itself as a JSON string). */
function schemaBody(schema: unknown): { schema: string } {
  return { schema: JSON.stringify(schema) };
}

Deno.test(`registry harness: Apicurio ${REGISTRY_VERSION} registers Avro schemas and enforces BACKWARD compatibility`, async () => {
  const registry = await startRegistry();
  const pid = registry.pid;
  const url = registry.url;
  try {
    assert.equal(url, `http://127.0.0.1:${registry.port}/apis/ccompat/v7`);
    const log = () => registry.tailLog(40);

    const registered = await call(url, "POST", `/subjects/${SUBJECT}/versions`, schemaBody(V1));
    assert.equal(registered.status, 200, `register: ${JSON.stringify(registered)}\n${await log()}`);
    assert.equal(typeof (registered.json as { id?: unknown }).id, "number");

    const config = await call(url, "PUT", `/config/${SUBJECT}`, { compatibility: "BACKWARD" });
    assert.equal(config.status, 200, `config: ${JSON.stringify(config)}`);
    assert.equal((config.json as { compatibility?: unknown }).compatibility, "BACKWARD");

    const latest = `/compatibility/subjects/${SUBJECT}/versions/latest`;
    const breaking = await call(url, "POST", latest, schemaBody(V2_BREAKING));
    assert.equal(breaking.status, 200, `compatibility: ${JSON.stringify(breaking)}`);
    assert.equal((breaking.json as { is_compatible?: unknown }).is_compatible, false);

    const optional = await call(url, "POST", latest, schemaBody(V2_OPTIONAL));
    assert.equal(optional.status, 200, `compatibility: ${JSON.stringify(optional)}`);
    assert.equal((optional.json as { is_compatible?: unknown }).is_compatible, true);

    const refused = await call(
      url,
      "POST",
      `/subjects/${SUBJECT}/versions`,
      schemaBody(V2_BREAKING),
    );
    assert.equal(refused.status, 409, `register breaking: ${JSON.stringify(refused)}`);

    const subjects = await call(url, "GET", "/subjects");
    assert.deepEqual(subjects.json, [SUBJECT]);

    // Same port after a restart, but the in-memory storage starts empty.
    await registry.restart(100);
    assert.equal(registry.url, url);
    assert.notEqual(registry.pid, pid);
    assert.deepEqual((await call(url, "GET", "/subjects")).json, []);
  } finally {
    await registry.stop();
  }
  // Nothing is left behind: the JVM is gone and the port answers no more.
  assert.equal(await Deno.stat(`/proc/${registry.pid}`).then(() => true, () => false), false);
  await assert.rejects(fetch(`${url}/subjects`).then((r) => r.body?.cancel()));
});
