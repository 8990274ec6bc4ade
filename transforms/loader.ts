/**
 * Loads a transform file from its source text, with the local files it imports, as `data:`
 * URLs a Worker can import: so the same path works under `deno run`, from a `deno bundle`
 * file and in a compiled binary (nothing is imported from the file system by URL).
 *
 * Import specifiers are rewritten: Spillway's own API (`spillway`, `@spillway/spillway`, or a
 * path to this repository's `mod.ts` or `transforms/api.ts`) becomes a small module with
 * `defineTransform`; a relative or absolute path becomes that file's `data:` URL, loaded the
 * same way; `node:` and `npm:` stay as they are; anything else is refused with the file and
 * line. Type-only imports (`import type …`) are left alone: they are erased before the module
 * runs, so a types file from `spillway types` need not exist for the transform to load. Lines keep their numbers (a `data:` URL holds no newline), so errors map back to the
 * file's lines.
 *
 * @module
 */

import { ConfigError, errorMessage } from "../errors.ts";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/** A transform file made ready for a Worker. */
export interface LoadedTransform {
  /** The transform file, absolute. */
  path: string;
  /** The `data:` URL of the transform module. */
  url: string;
  /** Each loaded file (the transform first) by its `data:` URL, to name them in errors. */
  files: Map<string, string>;
  /** sha-256 of every loaded file's path and text: changes when any of them changes. */
  version: string;
}

/** A transform file that could not be loaded: missing, unreadable, or a refused import. */
export class TransformLoadError extends ConfigError {
  override name = "TransformLoadError";
  /** The files the load read or tried to read: a fix in any of them is worth another try. */
  files: string[] = [];
}

/** The module that stands in for Spillway's API inside a Worker. */
export const API_SHIM = `const TRANSFORM = Symbol.for("spillway.transform");
export { TRANSFORM };
export function defineTransform(hooks) {
  return Object.assign(Object.create(null), hooks, { [TRANSFORM]: true });
}
`;

const SHIM_URL = `data:application/javascript;base64,${btoa(API_SHIM)}`;

/** Spillway's own modules that export `defineTransform` (paths, not imports of them). */
const HERE = dirname(fromFileUrl(import.meta.url));
const API_FILES = [join(HERE, "..", "mod.ts"), join(HERE, "api.ts"), join(HERE, "mod.ts")];

const API_NAMES = /^(?:spillway|@spillway\/spillway)(?:\/transforms)?$/;

/**
 * Static `import … from "x"`, `import "x"`, `export … from "x"`, and `import("x")` with a
 * string literal: group 1 is what comes before the quote, group 3 the specifier.
 */
const SPECIFIER =
  /(\bimport\s*\(\s*|\bimport\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?|\bexport\s+(?:type\s+)?(?:\*(?:\s+as\s+[\w$]+)?|\{[^}]*\})\s*from\s*)(["'])([^"'\n]+)\2/g;

/** Reads `path` and the local files it imports, and makes their `data:` URLs. */
export async function loadTransform(path: string): Promise<LoadedTransform> {
  const absolute = resolve(path);
  const files = new Map<string, string>();
  const texts: string[] = [];
  const urls = new Map<string, string>();
  const loading = new Set<string>();

  const load = async (file: string, importer: string | null): Promise<string> => {
    const done = urls.get(file);
    if (done !== undefined) return done;
    if (loading.has(file)) {
      throw new TransformLoadError(
        `Cannot load transform ${absolute}: ${file} imports itself through ${importer} (a cycle); transform files cannot import each other in a cycle`,
      );
    }
    if (!/\.(?:ts|mts|js|mjs)$/.test(file)) {
      throw new TransformLoadError(
        `Cannot load transform ${absolute}: ${
          importer ?? "it"
        } imports ${file}, which is not a .ts, .mts, .js or .mjs file`,
      );
    }
    loading.add(file);
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new TransformLoadError(
        `Cannot load transform ${absolute}: ${
          importer === null ? "" : `${importer} imports ${file}, and `
        }${file} cannot be read (${errorMessage(error)})`,
      );
    }
    const rewritten = await rewrite(text, file, load);
    const kind = /\.m?ts$/.test(file) ? "application/typescript" : "application/javascript";
    const url = `data:${kind};base64,${toBase64(rewritten)}`;
    loading.delete(file);
    urls.set(file, url);
    files.set(url, file);
    texts.push(`${file}\n${text}`);
    return url;
  };

  let url: string;
  try {
    url = await load(absolute, null);
  } catch (error) {
    if (error instanceof TransformLoadError) {
      error.files = [absolute, ...loading, ...files.values()];
    }
    throw error;
  }
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(texts.join("\u0000")),
  );
  const version = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  // The transform itself first.
  const ordered = new Map([[url, absolute], ...[...files].filter(([u]) => u !== url)]);
  return { path: absolute, url, files: ordered, version };
}

async function rewrite(
  text: string,
  file: string,
  load: (file: string, importer: string) => Promise<string>,
): Promise<string> {
  const replacements: { at: number; length: number; value: string }[] = [];
  // Matched on the text with its comments blanked out (same length, so indexes hold): a
  // commented-out import is not one.
  for (const match of withoutComments(text).matchAll(SPECIFIER)) {
    // Type-only imports are erased before the module runs: their files need not exist.
    if (/^(?:import|export)\s+type\s/.test(match[1]!)) continue;
    const specifier = match[3]!;
    const at = match.index! + match[1]!.length + 1;
    const line = text.slice(0, at).split("\n").length;
    const value = await resolveSpecifier(specifier, file, line, load);
    if (value !== specifier) replacements.push({ at, length: specifier.length, value });
  }
  let out = "";
  let from = 0;
  for (const { at, length, value } of replacements) {
    out += text.slice(from, at) + value;
    from = at + length;
  }
  return out + text.slice(from);
}

/**
 * `text` with every comment's characters but its newlines turned into spaces; strings and
 * template literals are left alone (a `//` in them is no comment).
 */
export function withoutComments(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === "/" && (next === "/" || next === "*")) {
      const close = next === "/" ? text.indexOf("\n", i) : text.indexOf("*/", i + 2);
      const end = close === -1 ? text.length : next === "/" ? close : close + 2;
      out += text.slice(i, end).replace(/[^\n]/g, " ");
      i = end;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < text.length && text[j] !== c && (c === "`" || text[j] !== "\n")) {
        j += text[j] === "\\" ? 2 : 1;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

async function resolveSpecifier(
  specifier: string,
  file: string,
  line: number,
  load: (file: string, importer: string) => Promise<string>,
): Promise<string> {
  if (API_NAMES.test(specifier)) return SHIM_URL;
  if (specifier.startsWith("node:") || specifier.startsWith("npm:")) return specifier;
  let target: string | null = null;
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    target = resolve(dirname(file), specifier);
  } else if (isAbsolute(specifier)) {
    target = specifier;
  } else if (specifier.startsWith("file:")) {
    target = fromFileUrl(specifier);
  }
  if (target === null) {
    throw new TransformLoadError(
      `Cannot load transform: ${file}:${line} imports "${specifier}"; a transform may import local files, node: and npm: modules, and Spillway's API ("spillway")`,
    );
  }
  if (API_FILES.includes(target)) return SHIM_URL;
  return await load(target, `${file}:${line}`);
}

function toBase64(text: string): string {
  return new TextEncoder().encode(text).toBase64();
}
