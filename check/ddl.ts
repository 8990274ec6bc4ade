/**
 * The check of `source.capture_ddl`: the SQL the pipeline installs and how to remove it, and
 * whether it is installed or the role may install it.
 *
 * @module
 */

import type { PipelineConfig } from "../config/mod.ts";
import {
  DDL_CAPTURE,
  DDL_MESSAGE_PREFIX,
  ddlCaptureInstallSql,
  ddlCaptureRemovalSql,
  type DdlCaptureState,
} from "../postgres/catalog.ts";
import type { Finding } from "./finding.ts";

const SUBJECT = "capture_ddl";

/**
 * With `source.capture_ddl` on: an `info` finding with the install SQL and the removal SQL,
 * then whether the event triggers are installed, or whether `spillway run` can install them
 * (a superuser can; PostgreSQL lets no other role create event triggers, though a managed
 * service may let its admin role). None when it is off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDdlCapture } from "./ddl.ts";
 * import { parsePipelineConfig } from "../config/mod.ts";
 * const config = parsePipelineConfig(
 *   "source: { url: postgres://app@db/shop, slot: s, publication: p, capture_ddl: true }\n" +
 *     "tables: { public.orders: {} }\nsinks: [stdout: {}]",
 *   { file: "shop.yaml", env: {} },
 * );
 * const [sql, status] = checkDdlCapture(config, {
 *   status: "absent",
 *   role: "app",
 *   superuser: false,
 *   database: "shop",
 * });
 * assert.equal(sql?.level, "info");
 * assert.match(sql?.detail ?? "", /CREATE EVENT TRIGGER spillway_capture_ddl /);
 * assert.equal(status?.level, "warn");
 * ```
 */
export function checkDdlCapture(config: PipelineConfig, state: DdlCaptureState): Finding[] {
  if (!config.source.captureDdl) return [];
  const { function: fn, trigger, dropTrigger } = DDL_CAPTURE;
  const where = `database "${state.database}"`;
  const findings: Finding[] = [{
    level: "info",
    subject: SUBJECT,
    message:
      `each DDL command sends its tag, objects and text as a message with prefix "${DDL_MESSAGE_PREFIX}", through the function ${fn} and the event triggers ${trigger} (ddl_command_end) and ${dropTrigger} (sql_drop) in ${where}; spillway run installs them when missing with the first block below, which a superuser may also run; the second removes them`,
    detail: [
      "-- install (as a superuser)",
      ddlCaptureInstallSql(),
      "-- remove (as a superuser, once no pipeline of this database captures DDL)",
      ddlCaptureRemovalSql(),
    ].join("\n"),
  }];
  if (state.status === "installed") {
    findings.push({
      level: "ok",
      subject: SUBJECT,
      message: `the event triggers ${trigger} and ${dropTrigger} are installed in ${where}`,
    });
  } else if (state.superuser) {
    findings.push({
      level: "ok",
      subject: SUBJECT,
      message: `the event triggers are ${
        state.status === "absent" ? "not installed" : "of another version, or disabled"
      } in ${where}; "${state.role}" is a superuser, so spillway run ${
        state.status === "absent" ? "installs" : "replaces"
      } them at start`,
    });
  } else {
    findings.push({
      level: "warn",
      subject: SUBJECT,
      message: `the event triggers are ${
        state.status === "absent" ? "not installed" : "of another version, or disabled"
      } in ${where}, and "${state.role}" is not a superuser: PostgreSQL lets only superusers create event triggers, so spillway run stops at start (unless a managed service lets this role create them)`,
      fix:
        `have a superuser run the install SQL above in ${where}, or connect as a superuser, or set capture_ddl: false in ${config.file}`,
    });
  }
  return findings;
}
