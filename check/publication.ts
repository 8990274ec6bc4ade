/**
 * The check of the publication: it exists and covers the configured tables, or it can be
 * created (a standby cannot; FOR ALL TABLES needs a superuser, FOR TABLE the CREATE
 * privilege and ownership of each table).
 *
 * @module
 */

import { type PipelineConfig, publishesAllTables } from "../config/mod.ts";
import {
  type DbTable,
  type Publication,
  type Server,
  tableKey,
  tablesBlockedBy,
  tablesBlockedByPublishing,
} from "../postgres/catalog.ts";
import { quoteIdent } from "../postgres/sql.ts";
import { type Finding, listSome, plural } from "./finding.ts";

/**
 * Checks the pipeline's publication against the tables the pipeline follows, and against
 * every table of the database it covers or would cover (`tables`): a table without a replica
 * identity in a publication of UPDATE and DELETE makes the application's UPDATE and DELETE on
 * it fail.
 */
export function checkPublication(
  config: PipelineConfig,
  server: Server,
  publication: Publication | null,
  followed: DbTable[],
  tables: DbTable[] = followed,
): Finding[] {
  const name = config.source.publication;
  const subject = `publication "${name}"`;
  const sqlName = quoteIdent(name);
  const allTables = publishesAllTables(config);
  const target = allTables
    ? "FOR ALL TABLES"
    : `FOR TABLE ${followed.map((t) => t.qualified).join(", ") || "…"}`;
  if (publication !== null) {
    const covers = publication.allTables
      ? "FOR ALL TABLES"
      : `covers ${plural(publication.tables.size, "table")}${
        publication.names.length > 0 ? ` (${listSome(publication.names)})` : ""
      }`;
    const findings: Finding[] = [{
      level: "ok",
      subject,
      message: `exists, ${covers}, publishes ${publication.operations.join(", ") || "nothing"}`,
    }];
    // Partitioned tables appear in pg_publication_tables through their partitions.
    const missing = publication.allTables
      ? []
      : followed.filter((t) =>
        t.kind !== "p" && !publication.tables.has(tableKey(t.schema, t.table))
      );
    if (missing.length > 0) {
      findings.push({
        level: "warn",
        subject,
        message: `does not cover ${plural(missing.length, "configured table")} (${
          listSome(missing.map((t) => t.qualified))
        }), so their changes are not streamed`,
        fix: `ALTER PUBLICATION ${sqlName} ADD TABLE ${missing.map((t) => t.qualified).join(", ")}`,
      });
    }
    // The followed tables among them are errors of the tables check.
    const followedKeys = new Set(followed.map((t) => tableKey(t.schema, t.table)));
    const blocked = tablesBlockedBy(publication, tables).filter((t) =>
      !followedKeys.has(tableKey(t.schema, t.table))
    );
    if (blocked.length > 0) findings.push(blocksWrites(subject, blocked));
    return findings;
  }
  if (!config.source.createPublication) {
    return [{
      level: "error",
      subject,
      message: "does not exist, and source.create_publication is false",
      fix:
        `CREATE PUBLICATION ${sqlName} ${target}; or set create_publication: true in ${config.file}`,
    }];
  }
  if (server.inRecovery) {
    return [{
      level: "error",
      subject,
      message: "does not exist, and a standby cannot create it",
      fix: `create it on the primary: CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  if (allTables && !server.superuser) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; it would be created FOR ALL TABLES (tables has a "*" entry), which needs a superuser, and "${server.user}" is not one`,
      fix:
        `have a superuser run CREATE PUBLICATION ${sqlName} FOR ALL TABLES, or list the tables (or schema globs) instead of "*" in ${config.file}`,
    }];
  }
  if (!allTables && followed.length === 0) {
    return [{
      level: "error",
      subject,
      message:
        "does not exist, and cannot be created: no existing table matches the tables of the pipeline",
      fix: `create the tables first, or fix the table names in ${config.file}`,
    }];
  }
  if (!server.superuser && !server.canCreateInDatabase) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; creating it needs the CREATE privilege on database "${server.database}", which "${server.user}" lacks`,
      fix: `GRANT CREATE ON DATABASE ${quoteIdent(server.database)} TO ${
        quoteIdent(server.user)
      }; or have a superuser run CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  const blocked = allTables ? tablesBlockedByPublishing(tables) : [];
  if (blocked.length > 0) {
    return [{
      ...blocksWrites(subject, blocked),
      level: "error",
      message: `does not exist, and Spillway will not create it FOR ALL TABLES: ${
        blocksWrites(subject, blocked).message
      }`,
    }];
  }
  const notOwned = allTables ? [] : followed.filter((t) => !t.owned);
  if (notOwned.length > 0) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; creating it FOR TABLE needs ownership of each table, and "${server.user}" does not own ${
          listSome(notOwned.map((t) => t.qualified))
        }`,
      fix: `have a superuser or the owner run CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  return [{
    level: "ok",
    subject,
    message: `does not exist; it will be created ${
      allTables ? "FOR ALL TABLES" : `FOR TABLE ${listSome(followed.map((t) => t.qualified))}`
    }`,
  }];
}

/**
 * Warns about the database's other publications that make the application's UPDATE and
 * DELETE fail on tables without a replica identity; one left by a `tail` session that ended
 * without cleaning up gets its DROP.
 */
export function checkOtherPublications(
  config: PipelineConfig,
  publications: Publication[],
  tables: DbTable[],
): Finding[] {
  const findings: Finding[] = [];
  for (const publication of publications) {
    if (publication.name === config.source.publication) continue;
    const blocked = tablesBlockedBy(publication, tables);
    if (blocked.length === 0) continue;
    const subject = `publication "${publication.name}"`;
    const finding = blocksWrites(subject, blocked);
    if (publication.name.startsWith(TAIL_PREFIX)) {
      finding.message += "; it was left by a spillway tail session that did not end cleanly";
      finding.fix = `DROP PUBLICATION ${quoteIdent(publication.name)}`;
    }
    findings.push(finding);
  }
  return findings;
}

/** Names of `tail`'s session objects (as `source/publications.ts` makes them). */
const TAIL_PREFIX = "spillway_tail_";

/** A warning that a publication of UPDATE and DELETE covers tables without a replica identity. */
function blocksWrites(subject: string, blocked: DbTable[]): Finding {
  const names = blocked.map((t) => t.qualified);
  return {
    level: "warn",
    subject,
    message: `covers ${plural(blocked.length, "table")} without a replica identity (${
      listSome(names)
    }): the application's UPDATE and DELETE on them fail (SQLSTATE 55000) while it publishes them`,
    fix: `give each a key (ALTER TABLE ${names[0]} ADD PRIMARY KEY (…); or ALTER TABLE ${
      names[0]
    } REPLICA IDENTITY FULL), or publish only tables that have one`,
  };
}
