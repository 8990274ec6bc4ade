/**
 * What `spillway check` reports: a {@linkcode Finding} per result, each warning and error
 * with its fix, and the text rendering of a list of them.
 *
 * @module
 */

/**
 * How bad a finding is: `error` means the pipeline cannot run as configured; `info` tells
 * what the pipeline will do (and is counted with neither).
 */
export type FindingLevel = "ok" | "info" | "warn" | "error";

/** One result of `checkPipeline`. */
export interface Finding {
  level: FindingLevel;
  /** What was checked, e.g. `wal_level`, `slot "orders_cdc"`, `table public.orders`. */
  subject: string;
  message: string;
  /** Lines to show below the message as they are, such as SQL to run. */
  detail?: string;
  /** What to do about a warning or an error. */
  fix?: string;
}

const LABELS: Record<FindingLevel, { text: string; color: string }> = {
  ok: { text: "ok", color: "\x1b[32m" },
  info: { text: "info", color: "\x1b[36m" },
  warn: { text: "warn", color: "\x1b[33m" },
  error: { text: "error", color: "\x1b[1;31m" },
};

/**
 * Renders findings one per line, the detail indented below, then the fix, and a count at the
 * end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatFindings } from "./mod.ts";
 * const text = formatFindings([
 *   { level: "ok", subject: "wal_level", message: "logical" },
 *   { level: "error", subject: "role", message: '"app" lacks REPLICATION', fix: "ALTER ROLE" },
 * ], { color: false });
 * assert.equal(
 *   text,
 *   'ok     wal_level: logical\nerror  role: "app" lacks REPLICATION\n       fix: ALTER ROLE\n\n1 error, 0 warnings, 1 ok',
 * );
 * ```
 */
export function formatFindings(findings: readonly Finding[], options: { color: boolean }): string {
  const lines: string[] = [];
  for (const finding of findings) {
    const label = LABELS[finding.level];
    const padded = label.text.padEnd(6);
    const shown = options.color
      ? `${label.color}${label.text}\x1b[0m${padded.slice(label.text.length)}`
      : padded;
    lines.push(`${shown} ${finding.subject}: ${finding.message}`);
    for (const line of finding.detail?.split("\n") ?? []) lines.push(`         ${line}`);
    if (finding.fix !== undefined) lines.push(`       fix: ${finding.fix}`);
  }
  const count = (level: FindingLevel) => findings.filter((f) => f.level === level).length;
  const errors = count("error");
  const warnings = count("warn");
  lines.push(
    "",
    `${errors} ${errors === 1 ? "error" : "errors"}, ${warnings} ${
      warnings === 1 ? "warning" : "warnings"
    }, ${count("ok")} ok`,
  );
  return lines.join("\n");
}

/**
 * A count with its noun, singular for 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plural } from "./finding.ts";
 * assert.equal(plural(1, "table"), "1 table");
 * assert.equal(plural(2, "table entry", "table entries"), "2 table entries");
 * ```
 */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/**
 * The first `limit` items joined with commas, then how many more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listSome } from "./finding.ts";
 * assert.equal(listSome(["a", "b", "c"], 2), "a, b and 1 more");
 * ```
 */
export function listSome(items: readonly string[], limit = 10): string {
  if (items.length <= limit) return items.join(", ");
  return `${items.slice(0, limit).join(", ")} and ${items.length - limit} more`;
}
