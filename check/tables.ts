/**
 * The check of the configured tables: each named table exists, each pattern matches,
 * and each followed table has a replica identity that gives UPDATE and DELETE a key,
 * with the configured key columns present and inside that identity.
 *
 * @module
 */

import { matchTable, type PipelineConfig } from "../config/mod.ts";
import {
  type DbTable,
  type Publication,
  replicaIdentity,
  type Server,
  tableKey,
} from "../postgres/catalog.ts";
import { type Finding, listSome, plural } from "./finding.ts";

/** Checks the `tables` entries against the database's tables and their replica identity. */
export function checkTables(
  config: PipelineConfig,
  server: Server,
  tables: DbTable[],
  followed: DbTable[],
  publication: Publication | null,
): Finding[] {
  const findings: Finding[] = [];
  const byName = new Map(tables.map((t) => [tableKey(t.schema, t.table), t]));
  for (const entry of config.tables) {
    const where = `${config.file}:${entry.line}`;
    if (!entry.schema.glob && !entry.table.glob) {
      if (byName.has(tableKey(entry.schema.name, entry.table.name))) continue;
      const lower = `${entry.schema.name}.${entry.table.name}`.toLowerCase();
      const similar = tables.find((t) => `${t.schema}.${t.table}`.toLowerCase() === lower);
      findings.push({
        level: "error",
        subject: `table ${entry.pattern}`,
        message: `does not exist in database "${server.database}"${
          similar === undefined ? "" : ` (names are case-sensitive; ${similar.qualified} exists)`
        }`,
        fix: `create it, or fix or remove the tables entry ${entry.pattern} at ${where}`,
      });
      continue;
    }
    const only = { ...config, tables: [entry] };
    const matches = tables.filter((t) => matchTable(only, t.schema, t.table) !== null);
    findings.push(
      matches.length === 0
        ? {
          level: "warn",
          subject: `tables "${entry.pattern}"`,
          message: `match no table in database "${server.database}"`,
          fix: `create the tables, or fix the pattern at ${where}`,
        }
        : {
          level: "ok",
          subject: `tables "${entry.pattern}"`,
          message: `match ${plural(matches.length, "table")} (${
            listSome(matches.map((t) => t.qualified))
          })`,
        },
    );
  }

  // Without UPDATE and DELETE published, a table needs no replica identity.
  const needsIdentity = publication === null ||
    publication.operations.includes("update") || publication.operations.includes("delete");
  const usable: string[] = [];
  for (const table of followed) {
    const resolved = matchTable(config, table.schema, table.table)!;
    const identity = replicaIdentity(table);
    const problems: Finding[] = [];
    const subject = `table ${table.qualified}`;
    if (table.persistence !== "p") {
      findings.push({
        level: "warn",
        subject,
        message: "is UNLOGGED: PostgreSQL never publishes its changes, so none are streamed",
        fix:
          `ALTER TABLE ${table.qualified} SET LOGGED; or leave it out of tables in ${config.file}`,
      });
      continue;
    }
    if (identity.columns === null) {
      problems.push({
        level: needsIdentity ? "error" : "warn",
        subject,
        message:
          `${identity.description}, so it has no replica identity: UPDATE and DELETE on it fail while a publication publishes them (SQLSTATE 55000)`,
        fix:
          `ALTER TABLE ${table.qualified} ADD PRIMARY KEY (…); or ALTER TABLE ${table.qualified} REPLICA IDENTITY FULL`,
      });
    }
    const key = resolved.key;
    if (key !== null) {
      const absent = key.filter((column) => !table.columns.includes(column));
      if (absent.length > 0) {
        problems.push({
          level: "error",
          subject,
          message: `has no ${absent.length === 1 ? "column" : "columns"} ${
            absent.map((c) => `"${c}"`).join(", ")
          } for its key (columns: ${listSome(table.columns, 20)})`,
          fix: `fix "key" of the entry "${resolved.pattern}" in ${config.file}`,
        });
      } else if (identity.columns !== null && table.identity !== "f") {
        const outside = key.filter((column) => !identity.columns!.includes(column));
        if (outside.length > 0) {
          problems.push({
            level: "warn",
            subject,
            message: `key (${
              key.join(", ")
            }) differs from the replica identity, ${identity.description}: a delete's "before" carries only ${
              identity.columns.join(", ")
            }, so its key lacks ${outside.join(", ")}`,
            fix: `use key: [${
              identity.columns.join(", ")
            }], or ALTER TABLE ${table.qualified} REPLICA IDENTITY FULL (or USING INDEX a unique index on the key)`,
          });
        }
      }
    }
    if (problems.length === 0) usable.push(`${table.qualified} (${identity.description})`);
    findings.push(...problems);
  }
  if (usable.length > 0) {
    findings.push({
      level: "ok",
      subject: "replica identity",
      message: `${plural(usable.length, "table")} ${
        usable.length === 1 ? "carries" : "carry"
      } a key for UPDATE and DELETE: ${listSome(usable)}`,
    });
  }
  return findings;
}
