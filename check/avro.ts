/**
 * `spillway check` for Kafka sinks that write Avro (`format: debezium-avro`): whether the schema
 * registry answers, and for each followed table whether the schemas its next change will be
 * written with are registered already, would be accepted under the subject's compatibility
 * level, or would be refused (the pipeline would then stop at that table's first change).
 *
 * The schemas are made as the sink makes them (`formats/avro/debezium_avro.ts`), from the
 * catalog's columns, types, NOT NULL, defaults and primary key: the same facts the source
 * reads when a table's Relation message arrives. Nothing is registered.
 *
 * @module
 */

import type { DbTable } from "../postgres/catalog.ts";
import { readColumnTypes, readTableFacts } from "../postgres/catalog.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { type KafkaSinkConfig, matchTable, type PipelineConfig } from "../config/mod.ts";
import { loadTypeInfos } from "../decoder/types/catalog.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { TableFactsRegistry } from "../decoder/table_facts.ts";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { lsn } from "../decoder/lsn.ts";
import { EVENT_RELATION, type SinkRecord } from "../events.ts";
import { errorMessage } from "../errors.ts";
import { DebeziumAvroFormat } from "../formats/avro/debezium_avro.ts";
import type { SchemaRegistryClient } from "../formats/avro/registry.ts";
import { schemaRegistryClient } from "../sinks/kafka/schema_registry.ts";
import type { Finding } from "./finding.ts";

/** Findings for every `debezium-avro` Kafka sink of the pipeline (none when there is none). */
export async function checkAvroSchemas(
  config: PipelineConfig,
  connection: PgConnection,
  followed: readonly DbTable[],
): Promise<Finding[]> {
  const sinks = config.sinks.flatMap((sink) =>
    sink.type === "kafka" && sink.format === "debezium-avro" && sink.schemaRegistry !== null
      ? [sink]
      : []
  );
  if (sinks.length === 0 || followed.length === 0) return [];
  const relations = await readRelations(connection, followed);
  const findings: Finding[] = [];
  for (const sink of sinks) findings.push(...await checkSink(config, sink, relations));
  return findings;
}

interface Relations {
  types: TypeRegistry;
  facts: TableFactsRegistry;
  tables: { table: DbTable; relation: RelationMessage }[];
}

/** The followed tables as Relation messages would describe them, with their catalog facts. */
async function readRelations(
  connection: PgConnection,
  followed: readonly DbTable[],
): Promise<Relations> {
  const oids = followed.map((table) => table.oid);
  const columns = await readColumnTypes(connection, oids);
  const facts = new TableFactsRegistry();
  for (const fact of await readTableFacts(connection, oids)) facts.set(fact);
  const types = new TypeRegistry();
  const typeOids = [...new Set([...columns.values()].flat().map((column) => column.typeOid))];
  for (const info of await loadTypeInfos(connection, types.missing(typeOids))) {
    types.register(info);
  }
  const tables = followed.map((table) => {
    const key = new Set(table.primaryKey ?? table.identityIndex ?? []);
    const relation: RelationMessage = {
      type: "Relation",
      relationId: table.oid,
      namespace: table.schema,
      relationName: table.table,
      replicaIdentity: table.identity as RelationMessage["replicaIdentity"],
      columns: (columns.get(table.oid) ?? []).map((column) => ({
        flags: key.has(column.name) ? 1 : 0,
        isKey: key.has(column.name),
        name: column.name,
        typeOid: column.typeOid,
        typeModifier: column.typeModifier,
      })),
    };
    return { table, relation };
  });
  return { types, facts, tables };
}

async function checkSink(
  config: PipelineConfig,
  sink: KafkaSinkConfig,
  relations: Relations,
): Promise<Finding[]> {
  const registry = sink.schemaRegistry!;
  const subject = `schema registry ${registry.url}`;
  let client: SchemaRegistryClient;
  try {
    client = await schemaRegistryClient(registry, { timeoutMs: 10_000 });
  } catch (error) {
    return [{ level: "error", subject, message: errorMessage(error), fix: "fix schema_registry" }];
  }
  const prefix = sink.topicPrefix ?? config.defaults.topicPrefix;
  const format = new DebeziumAvroFormat({
    serverName: prefix,
    database: "",
    version: "",
    types: relations.types,
    tables: relations.facts,
    subjectNaming: registry.subjectNaming,
  });
  const findings: Finding[] = [];
  try {
    for (const { table, relation } of relations.tables) {
      const route = matchTable(config, table.schema, table.table);
      if (route === null) continue;
      if (route.transform !== null) {
        // Its records have the shape its transform gives them, known only from its output.
        findings.push({
          level: "info",
          subject: `avro ${table.schema}.${table.table}`,
          message: `written in the shape its transform (${
            route.transform.join(", ")
          }) returns, which is known from its output only: not checked`,
        });
        continue;
      }
      const routed = sink.topicPrefix === null
        ? route.topic
        : route.topic.replace(`${config.defaults.topicPrefix}.`, `${sink.topicPrefix}.`);
      const record = changeOf(relation, routed);
      const verdicts: string[] = [];
      let level: Finding["level"] = "ok";
      let fix: string | undefined;
      for (const { subject: name, schema } of format.schemasOf(record)) {
        const latest = await client.latest(name);
        if (latest === null) {
          verdicts.push(`${name}: not registered yet (the first change registers it)`);
          continue;
        }
        if (await client.lookup(name, schema) !== null) {
          verdicts.push(`${name}: registered`);
          continue;
        }
        const verdict = await client.compatibility(name, schema);
        const rule = await client.level(name);
        if (verdict === null || verdict.compatible) {
          verdicts.push(
            `${name}: changed, compatible under ${rule} (registered at the next change)`,
          );
        } else {
          const deadLetter = registry.onIncompatible === "dead_letter";
          level = deadLetter ? "warn" : "error";
          verdicts.push(
            `${name}: changed and incompatible under ${rule}${
              verdict.messages.length === 0 ? "" : ` (${verdict.messages.join("; ")})`
            }: ${
              deadLetter
                ? "the table's changes would go to the dead-letter topic from its next change on"
                : "the pipeline would stop at the table's next change"
            }`,
          );
          fix =
            `make the column change compatible (a new column nullable or with a default), or set subject ${name}'s compatibility level`;
        }
      }
      findings.push({
        level,
        subject: `avro ${table.schema}.${table.table}`,
        message: verdicts.join("; "),
        fix,
      });
    }
  } catch (error) {
    findings.push({
      level: "error",
      subject,
      message: errorMessage(error),
      fix: "check that the registry runs and that schema_registry names it",
    });
  } finally {
    client.close();
  }
  return findings;
}

/** A change record of `relation` on `topic`, to ask the format for its schemas. */
function changeOf(
  relation: RelationMessage,
  topic: string,
): Extract<SinkRecord, { kind: "change" }> {
  return {
    kind: "change",
    topic,
    key: null,
    event: {
      op: "c",
      source: {
        schema: relation.namespace,
        table: relation.relationName,
        relid: relation.relationId,
        lsn: lsn(0n),
        commitLsn: lsn(0n),
        xid: 0,
        commitTime: 0n,
      },
      before: null,
      after: {},
      unchanged: [],
      [EVENT_RELATION]: relation,
    },
  };
}
