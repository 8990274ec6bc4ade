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
 * `testing/` stands apart too: it imports nothing of the tree, and only `cli/` (the demo)
 * may import it among shipped code. So does `examples/`: user code, which imports only
 * `mod.ts`; only `cli/` refers to it (the demo copies its transform from there).
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
];

/** Folders beside the layer order, with rules of their own (see {@linkcode ONLY}). */
const APART = new Set(["leaves", "testing", "examples"]);

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
  "main.ts": ["cli/", "errors.ts"],
  config: [
    "postgres/connection_string.ts",
    "postgres/sql.ts",
    "decoder/lsn.ts",
    "decoder/pgoutput.ts",
    "errors.ts",
  ],
  // The source gets plain options: nothing from config/.
  source: ["postgres/", "decoder/", "ops/", "leaves"],
  formats: ["decoder/", "events.ts", "errors.ts"],
  ops: ["errors.ts"],
  leaves: ["decoder/"],
  decoder: ["errors.ts"],
  testing: [],
  examples: ["mod.ts"],
};

/** Where a package from npm may be imported: the YAML parser, and client libraries in sinks. */
const NPM_ALLOWED = new Set(["config", "sinks"]);

/** The layer a repository-relative path belongs to. */
export function layerOf(path: string): string {
  if (path === "errors.ts" || path === "events.ts" || path === "retry.ts") return "leaves";
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

/**
 * The specifiers a module imports: static imports and re-exports (also multi-line, also
 * single-quoted), side-effect imports, dynamic `import()`, and modules given to a Worker as
 * `new URL("./x.ts", import.meta.url)`. Lines of doc comments (` * import …`) are examples,
 * not imports.
 */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+\w+))?)\s*from\s*(["'])([^"']+)\1/gm,
    /^\s*import\s*(["'])([^"']+)\1/gm,
    /\bimport\(\s*(["'])([^"']+)\1\s*\)/g,
    /\bnew URL\(\s*(["'])(\.{1,2}\/[^"']+\.(?:ts|mts|js|mjs))\1\s*,\s*import\.meta\.url/g,
  ];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) found.push(match[2]!);
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
    if (rank === -1 && !APART.has(from)) {
      violations.push({ file, imports: "", rule: `folder "${from}" is not in the layer list` });
      continue;
    }
    for (const target of targets) {
      const to = layerOf(target);
      const broken = (rule: string) => violations.push({ file, imports: target, rule });
      if (FREE.has(to) || isTestOnly(target)) {
        broken("shipped code must not import tests, test data or benchmarks");
        continue;
      }
      if (to === from) continue;
      if ((to === "testing" || to === "examples") && from !== "cli") {
        broken(`only cli/ (the demo) may import ${to}/`);
        continue;
      }
      const toRank = LAYERS.indexOf(to);
      const apart = APART.has(to) || APART.has(from);
      if (!apart && toRank <= rank) {
        broken(`"${from}" may import only layers below it; "${to}" is above or beside it`);
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
        broken(`"${from}" may import from other layers only ${only.join(", ") || "nothing"}`);
      }
    }
  }
  return violations;
}

/**
 * Bare specifiers against the rules: npm packages only where {@linkcode NPM_ALLOWED} says,
 * and `decoder/` stays pure (no sockets, files or processes).
 */
export function packageViolations(
  packages: ReadonlyMap<string, readonly string[]>,
): Violation[] {
  const violations: Violation[] = [];
  for (const [file, specifiers] of packages) {
    const from = layerOf(file);
    if (FREE.has(from) || isTestOnly(file) || from === "testing") continue;
    for (const specifier of specifiers) {
      if (specifier.startsWith("npm:") && !NPM_ALLOWED.has(from)) {
        violations.push({
          file,
          imports: specifier,
          rule: `npm packages are imported only in ${[...NPM_ALLOWED].join("/, ")}/`,
        });
      }
      if (from === "decoder" && !["node:crypto", "node:buffer"].includes(specifier)) {
        violations.push({ file, imports: specifier, rule: "decoder/ is pure: no I/O modules" });
      }
    }
  }
  return violations;
}

/** Uses of the outside world that a pure module must not make. */
const IMPURE = /\bDeno\.|\bsetTimeout\(|\bsetInterval\(|\bDate\.now\(|\bperformance\.now\(/;

/** The first line of `source` that uses the outside world, outside comments; `null` if none. */
export function impureLine(source: string): string | null {
  for (const line of source.split("\n")) {
    const code = line.replace(/\/\/.*$/, "");
    if (/^\s*(?:\*|\/\*\*?)/.test(code)) continue;
    if (IMPURE.test(code)) return line.trim();
  }
  return null;
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

/** The tree's modules: their relative imports (as repository paths), packages and text. */
async function readTree(): Promise<{
  graph: Map<string, string[]>;
  packages: Map<string, string[]>;
  texts: Map<string, string>;
}> {
  const graph = new Map<string, string[]>();
  const packages = new Map<string, string[]>();
  const texts = new Map<string, string>();
  for (const file of await sourceFiles()) {
    const text = await Deno.readTextFile(join(ROOT, file));
    const specifiers = importsOf(text);
    texts.set(file, text);
    graph.set(
      file,
      specifiers.filter((specifier) => specifier.startsWith(".")).map((specifier) =>
        relative(ROOT, normalize(join(ROOT, dirname(file), specifier)))
      ),
    );
    packages.set(file, specifiers.filter((specifier) => !specifier.startsWith(".")));
  }
  return { graph, packages, texts };
}

function describe(violations: Violation[]): string {
  return violations.map((v) => `${v.file} imports ${v.imports}: ${v.rule}`).join("\n");
}

Deno.test("layers: every import in the tree follows the layer rule", async () => {
  const { graph, packages } = await readTree();
  assert.ok(graph.size > 50, `only ${graph.size} files found under ${ROOT}`);
  const violations = [...layerViolations(graph), ...packageViolations(packages)];
  assert.equal(violations.length, 0, `The layout rule is broken:\n${describe(violations)}`);
});

Deno.test("layers: no file imports itself back through others", async () => {
  const found = circles((await readTree()).graph);
  assert.equal(
    found.length,
    0,
    `Import circles:\n${found.map((circle) => circle.join(" -> ")).join("\n")}`,
  );
});

Deno.test("layers: decoder/ is pure: no Deno.*, timers or clocks outside its tests", async () => {
  const impure: string[] = [];
  for (const [file, text] of (await readTree()).texts) {
    if (layerOf(file) !== "decoder" || isTestOnly(file)) continue;
    const line = impureLine(text);
    if (line !== null) impure.push(`${file}: ${line}`);
  }
  assert.deepEqual(impure, [], "decoder/ must stay pure: bytes in, typed messages out");
});

Deno.test("layers: the checker catches upward imports, tight-rule breaches, tests, packages and circles", () => {
  const graph = new Map<string, string[]>([
    ["decoder/lsn.ts", ["pipelines/runner.ts"]],
    ["formats/json.ts", ["postgres/connection.ts", "events.ts", "retry.ts"]],
    ["config/load.ts", ["postgres/connection_string.ts", "decoder/lsn.ts", "errors.ts"]],
    ["source/replication_source.ts", ["config/types.ts", "postgres/catalog.ts"]],
    ["sinks/file.ts", ["formats/json.ts", "events.ts"]],
    ["sinks/file_test.ts", ["tests/_runner_util.ts", "pipelines/runner.ts"]],
    ["pipelines/runner.ts", ["pipelines/queue_test.ts", "testing/random.ts"]],
    ["cli/demo.ts", ["testing/embedded_postgres.ts"]],
    ["testing/random.ts", ["decoder/pgoutput.ts"]],
    ["source/a.ts", ["source/b.ts"]],
    ["source/b.ts", ["source/a.ts"]],
  ]);
  assert.deepEqual(layerViolations(graph).map((v) => `${v.file} -> ${v.imports}`), [
    "decoder/lsn.ts -> pipelines/runner.ts",
    "formats/json.ts -> postgres/connection.ts",
    "formats/json.ts -> retry.ts",
    "source/replication_source.ts -> config/types.ts",
    "pipelines/runner.ts -> pipelines/queue_test.ts",
    "pipelines/runner.ts -> testing/random.ts",
    "testing/random.ts -> decoder/pgoutput.ts",
  ]);
  assert.deepEqual(circles(graph), [["source/a.ts", "source/b.ts", "source/a.ts"]]);
  const packages = new Map<string, string[]>([
    ["config/load.ts", ["npm:yaml@2.9.1", "node:path"]],
    ["pipelines/runner.ts", ["npm:kafkajs@2"]],
    ["decoder/auth.ts", ["node:crypto"]],
    ["decoder/pgoutput.ts", ["node:net"]],
  ]);
  assert.deepEqual(packageViolations(packages).map((v) => `${v.file} -> ${v.imports}`), [
    "pipelines/runner.ts -> npm:kafkajs@2",
    "decoder/pgoutput.ts -> node:net",
  ]);
  assert.equal(impureLine("/** Deno.exit in a doc */\nconst x = 1; // Date.now()"), null);
  assert.equal(impureLine("const t = Date.now();"), "const t = Date.now();");
});

Deno.test("layers: imports are found in static, multi-line, re-export and dynamic forms", () => {
  const source = [
    'import { a } from "./a.ts";',
    "import {",
    "  b, // a comment; with a semicolon",
    '} from "../b.ts";',
    'export * from "./c.ts";',
    'import "./d.ts";',
    'const e = await import("./e.ts");',
    ' * import { f } from "./f.ts";',
    "  import { g } from 'npm:yaml@2';",
    'import type { H } from "./h.ts";',
    'new Worker(new URL("./worker_main.ts", import.meta.url), { type: "module" });',
    'const data = new URL("./vectors.json", import.meta.url);',
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "npm:yaml@2",
    "./h.ts",
    "./d.ts",
    "./e.ts",
    "./worker_main.ts",
  ]);
});

Deno.test("layers: the README's layout table lists every folder of code, and only those", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const section = readme.slice(readme.indexOf("## Layout"), readme.indexOf("## Tests"));
  const listed = [...section.matchAll(/^\| `([a-z_]+)\/` /gm)].map((match) => match[1]!).sort();
  const folders: string[] = [];
  for await (const entry of Deno.readDir(ROOT)) {
    if (!entry.isDirectory || entry.name.startsWith(".")) continue;
    const files = await sourceFiles(entry.name);
    if (files.length > 0 || entry.name === "examples") folders.push(entry.name);
  }
  assert.deepEqual(listed, folders.sort());
  for (const folder of folders) {
    if (FREE.has(folder) || folder === "examples") continue;
    assert.ok(
      LAYERS.includes(folder) || folder === "testing",
      `folder "${folder}" is in the README but not in the layer list of this test`,
    );
  }
});
