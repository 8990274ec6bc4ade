/**
 * The layout rule, checked: each folder imports only the folders listed below it (see the
 * README's layout table), a few folders are held tighter than that, and no file imports
 * itself back through others. Adding an import that breaks the rule fails this test with
 * the file, the import and the rule it breaks.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The layers from top to bottom. A file in a layer may import its own layer and any layer
 * below it. The root leaves (`errors.ts`, `events.ts`, `retry.ts`, layer "leaves") stand
 * apart: everything may import them, and they import only `decoder/` and each other.
 */
const LAYERS: readonly string[] = [
  "main.ts",
  "mod.ts",
  "cli",
  "pipelines",
  "transforms",
  "check",
  "sinks",
  "formats",
  "source",
  "config",
  "ops",
  "postgres",
  "decoder",
  "testing",
];

/** Layers outside the rule: tests, benchmarks and tools may import anything. */
const FREE = new Set(["tests", "bench"]);

/** Test files and test data beside the code are not shipped: they may import anything. */
function isTestOnly(path: string): boolean {
  return path.endsWith("_test.ts") || path.includes("/testdata/");
}

/**
 * Tighter than the layer order: a layer listed here may import from other layers only
 * these files or folders (its own layer is always allowed).
 */
const ONLY: Readonly<Record<string, readonly string[]>> = {
  "main.ts": ["cli/", "leaves"],
  config: [
    "postgres/connection_string.ts",
    "decoder/lsn.ts",
    "decoder/pgoutput.ts",
    "leaves",
  ],
  formats: ["decoder/", "leaves"],
  ops: ["leaves"],
  leaves: ["decoder/"],
  decoder: ["errors.ts"],
  testing: [],
};

/** `source/` gets plain options: nothing from `config/` (already below it, so implied). */

/** The layer a repository-relative path belongs to. */
export function layerOf(path: string): string {
  if (path === "errors.ts" || path === "events.ts" || path === "retry.ts") return "leaves";
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

/** The relative specifiers a module imports: static, re-exports and dynamic `import()`. */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const statics =
    /^(?:import|export)\b[^;]*?\bfrom\s*"(\.{1,2}\/[^"]+)"|^import\s*"(\.{1,2}\/[^"]+)"/gm;
  for (const match of source.matchAll(statics)) found.push((match[1] ?? match[2])!);
  for (const match of source.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g)) {
    found.push(match[1]!);
  }
  return found;
}

/** One broken rule: which file imports what, and why that is not allowed. */
export interface Violation {
  file: string;
  imports: string;
  rule: string;
}

/** Checks every edge of `graph` (file → the files it imports) against the rules. */
export function layerViolations(graph: ReadonlyMap<string, readonly string[]>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    if (FREE.has(from) || isTestOnly(file)) continue;
    const rank = LAYERS.indexOf(from);
    if (rank === -1 && from !== "leaves") {
      violations.push({ file, imports: "", rule: `folder "${from}" is not in the layer list` });
      continue;
    }
    for (const target of targets) {
      const to = layerOf(target);
      if (to === from) continue;
      if (FREE.has(to)) {
        violations.push({
          file,
          imports: target,
          rule: `"${from}" must not import tests or bench`,
        });
        continue;
      }
      const toRank = LAYERS.indexOf(to);
      if (to !== "leaves" && from !== "leaves" && toRank <= rank) {
        violations.push({
          file,
          imports: target,
          rule: `"${from}" may import only layers below it; "${to}" is above or beside it`,
        });
        continue;
      }
      const only = ONLY[from];
      if (
        only !== undefined &&
        !only.some((allowed) =>
          allowed === "leaves"
            ? to === "leaves"
            : allowed.endsWith("/")
            ? target.startsWith(allowed)
            : target === allowed
        )
      ) {
        violations.push({
          file,
          imports: target,
          rule: `"${from}" may import from other layers only ${only.join(", ") || "nothing"}`,
        });
      }
    }
  }
  return violations;
}

/** Every import circle among files, each as the path of files that closes it. */
export function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      const seen = state.get(next);
      if (seen === "open") found.push([...path.slice(path.indexOf(next)), next]);
      else if (seen === undefined) visit(next);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

async function sourceFiles(dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    if (entry.isDirectory) files.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** The tree's import graph: repository-relative file → repository-relative imports. */
async function treeGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles()) {
    const text = await Deno.readTextFile(join(ROOT, file));
    graph.set(
      file,
      importsOf(text).map((specifier) =>
        relative(ROOT, normalize(join(ROOT, dirname(file), specifier)))
      ),
    );
  }
  return graph;
}

function describe(violations: Violation[]): string {
  return violations.map((v) => `${v.file} imports ${v.imports}: ${v.rule}`).join("\n");
}

Deno.test("layers: every import in the tree follows the layer rule", async () => {
  const graph = await treeGraph();
  assert.ok(graph.size > 50, `only ${graph.size} files found under ${ROOT}`);
  const violations = layerViolations(graph);
  assert.equal(violations.length, 0, `The layout rule is broken:\n${describe(violations)}`);
});

Deno.test("layers: no file imports itself back through others", async () => {
  const found = circles(await treeGraph());
  assert.equal(
    found.length,
    0,
    `Import circles:\n${found.map((circle) => circle.join(" -> ")).join("\n")}`,
  );
});

Deno.test("layers: the checker catches an upward import, a tight-rule breach and a circle", () => {
  const graph = new Map<string, string[]>([
    ["decoder/lsn.ts", ["pipelines/runner.ts"]],
    ["formats/json.ts", ["postgres/connection.ts"]],
    ["config/load.ts", ["postgres/connection_string.ts", "decoder/lsn.ts"]],
    ["sinks/file.ts", ["formats/json.ts", "events.ts"]],
    ["sinks/file_test.ts", ["tests/_runner_util.ts", "pipelines/runner.ts"]],
    ["source/a.ts", ["source/b.ts"]],
    ["source/b.ts", ["source/a.ts"]],
  ]);
  assert.deepEqual(
    layerViolations(graph).map((v) => `${v.file} -> ${v.imports}`),
    ["decoder/lsn.ts -> pipelines/runner.ts", "formats/json.ts -> postgres/connection.ts"],
  );
  assert.deepEqual(circles(graph), [["source/a.ts", "source/b.ts", "source/a.ts"]]);
});

Deno.test("layers: imports are found in static, multi-line, re-export and dynamic forms", () => {
  const source = [
    'import { a } from "./a.ts";',
    "import {",
    "  b,",
    '} from "../b.ts";',
    'export * from "./c.ts";',
    'import "./d.ts";',
    'const e = await import("./e.ts");',
    ' * import { f } from "./f.ts";',
    'import { g } from "npm:yaml@2";',
  ].join("\n");
  assert.deepEqual(importsOf(source), ["./a.ts", "../b.ts", "./c.ts", "./d.ts", "./e.ts"]);
});
