/**
 * What the Kafka sink and `spillway check` share about a sink's schema registry and
 * certificates, without the Kafka client (so `spillway check` does not load it).
 *
 * @module
 */

import type { KafkaSinkConfig } from "../../config/mod.ts";
import { ConfigError } from "../../errors.ts";
import { SchemaRegistryClient } from "../../formats/avro/registry.ts";

/** A certificate file a setting names; an error names the file and the setting to fix. */
export async function readCertificate(
  path: string,
  what: string,
  setting: string,
): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(
      `Cannot read ${what} ${path}: ${(error as Error).message}; fix ${setting}`,
    );
  }
}

/** The client of a sink's schema registry (its CA certificate read). */
export async function schemaRegistryClient(
  registry: NonNullable<KafkaSinkConfig["schemaRegistry"]>,
  options: { timeoutMs?: number } = {},
): Promise<SchemaRegistryClient> {
  return new SchemaRegistryClient({
    url: registry.url,
    username: registry.username ?? undefined,
    password: registry.password ?? undefined,
    caCert: registry.ca === null ? undefined : await readCertificate(
      registry.ca,
      "the schema registry's CA certificate",
      "schema_registry.ca",
    ),
    timeoutMs: options.timeoutMs,
  });
}
