/**
 * The walker over a parsed YAML document: positions, aliases, duplicate and unknown keys
 * with "did you mean", and `${VAR}` substitution. Private to `config/`.
 *
 * @module
 */

import {
  type Alias,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type YAMLMap,
} from "npm:yaml@2.9.1";
import type { ConfigProblem } from "./types.ts";

// ---------------------------------------------------------------------------------------
// Walking the YAML tree

/** A value in the tree with its key path, e.g. `sinks[0].file.path`. */
export interface Field {
  node: unknown;
  path: string;
  offset: number;
}

/** Reads a field; `undefined` means a problem was reported. */
export type Read<T> = (checker: Checker, field: Field) => T | undefined;

export type ScalarValue = string | number | boolean | null;

/**
 * A scalar's value. When environment variables were substituted, `text` is the result,
 * which string fields take as it is, and `value` is that text typed the way an unquoted
 * YAML value is, which number, boolean and null fields take.
 */
export interface ScalarRead {
  value: ScalarValue;
  text: string | null;
}

/** Holds the document and collects problems while the sections are read. */
export class Checker {
  readonly text: string;
  readonly doc: ReturnType<typeof parseDocument>;
  readonly lines: LineCounter;
  readonly baseDir: string;
  readonly env: (name: string) => string | undefined;
  readonly #problems: { offset: number; message: string }[] = [];
  readonly #substituted = new Map<unknown, string | undefined>();
  /** Each alias's anchor, found in one pass (the yaml package's resolve walks the document). */
  #anchors: Map<Alias, unknown> | null = null;

  constructor(text: string, options: { lines: LineCounter; baseDir: string; env?: Env }) {
    this.text = text;
    this.lines = options.lines;
    this.baseDir = options.baseDir;
    const env = options.env;
    this.env = env === undefined ? (name) => Deno.env.get(name) : (name) => env[name];
    this.doc = parseDocument(text, {
      lineCounter: this.lines,
      prettyErrors: false,
      uniqueKeys: false, // reported by Section, with the key's path
      version: "1.2",
    });
  }

  get failed(): boolean {
    return this.#problems.length > 0;
  }

  report(offset: number, message: string): void {
    this.#problems.push({ offset, message });
  }

  /** Reports `"path": expected ..., found ...`; returns `undefined` for the reader. */
  fail(field: Field, expected: string, found?: string): undefined {
    const shown = found ?? describe(field.node);
    this.report(field.offset, `${quotePath(field.path)}: expected ${expected}, found ${shown}`);
    return undefined;
  }

  line(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /** Problems sorted by position (then by the order found), duplicates dropped. */
  problems(): ConfigProblem[] {
    const seen = new Set<string>();
    const problems: ConfigProblem[] = [];
    const ordered = this.#problems
      .map((problem, index) => ({ ...problem, index }))
      .sort((a, b) => a.offset - b.offset || a.index - b.index);
    for (const { offset, message } of ordered) {
      const { line, col } = this.lines.linePos(offset);
      const key = `${line}:${col}: ${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push({ line, column: col, message });
    }
    return problems;
  }

  /** Follows an alias to its anchor; `undefined` (reported) when the anchor is missing. */
  deref(node: unknown, path: string): unknown {
    if (!isAlias(node)) return node;
    this.#anchors ??= anchorsOf(this.doc);
    const target = this.#anchors.get(node as Alias);
    if (target === undefined) {
      const name = (node as Alias).source;
      this.report(
        startOf(node) ?? 0,
        `${
          quotePath(path)
        }: expected an alias of an anchor defined above it (&${name}), found *${name}`,
      );
    }
    return target;
  }

  /**
   * The value of a scalar with environment variables substituted, or `undefined`
   * (reported) for a map, a list or a bad substitution.
   */
  scalar(field: Field, expected: string, encode?: Encode): ScalarRead | undefined {
    const node = field.node;
    if (!isScalar(node)) return this.fail(field, expected);
    const value = node.value as ScalarValue;
    if (typeof value !== "string" || !value.includes("${")) return { value, text: null };
    // Substituted once per node, so a value read twice is reported once.
    if (!this.#substituted.has(node)) {
      this.#substituted.set(node, this.#interpolate(field, value, encode));
    }
    const text = this.#substituted.get(node);
    return text === undefined ? undefined : { value: typePlain(text), text };
  }

  #interpolate(field: Field, text: string, encode?: Encode): string | undefined {
    let out = "";
    let index = 0;
    let ok = true;
    while (index < text.length) {
      const dollar = text.indexOf("$", index);
      if (dollar === -1) break;
      out += text.slice(index, dollar);
      if (text.startsWith("$${", dollar)) {
        out += "${";
        index = dollar + 3;
        continue;
      }
      if (!text.startsWith("${", dollar)) {
        out += "$";
        index = dollar + 1;
        continue;
      }
      const close = text.indexOf("}", dollar + 2);
      const reference = close === -1 ? text.slice(dollar) : text.slice(dollar, close + 1);
      index = close === -1 ? text.length : close + 1;
      const at = this.#offsetInSource(field, reference);
      const match = close === -1 ? null : VARIABLE.exec(text.slice(dollar + 2, close));
      if (match === null) {
        this.report(
          at,
          `${
            quotePath(field.path)
          }: expected a variable like \${NAME} or \${NAME:-default}, found ${
            quote(reference)
          } (write $\${ for a literal \${)`,
        );
        ok = false;
        continue;
      }
      const name = match[1]!;
      const fallback = match[2];
      const value = this.env(name);
      // What precedes it as substituted so far (so a value lands where the earlier values
      // put it), and what follows it as written.
      const place = { before: out, after: text.slice(index) };
      if (value !== undefined && (value !== "" || fallback === undefined)) {
        out += encode ? encode(value, place) : value;
      } else if (fallback !== undefined) {
        out += encode ? encode(fallback, place) : fallback;
      } else {
        this.report(
          at,
          `${quotePath(field.path)}: expected environment variable ${
            quote(name)
          } to be set, found it unset (or give a default: \${${name}:-value})`,
        );
        ok = false;
      }
    }
    out += text.slice(index);
    return ok ? out : undefined;
  }

  /** Where `fragment` sits in the file within the field's scalar, or the scalar's start. */
  #offsetInSource(field: Field, fragment: string): number {
    const range = (field.node as { range?: readonly number[] | null }).range;
    if (!range) return field.offset;
    const start = range[0]!;
    const at = this.text.slice(start, range[1]).indexOf(fragment);
    return at === -1 ? field.offset : start + at;
  }
}

type Env = Record<string, string | undefined>;

/**
 * How a substituted value is written into the text (e.g. percent-encoded inside a URL's
 * user info), given what surrounds the reference: `before`, the text before it with the
 * references there already substituted (encoded), and `after`, the text after it as written
 * (its references not yet substituted).
 */
export type Encode = (value: string, place: { before: string; after: string }) => string;

const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

export function startOf(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] | null } | null)?.range;
  return range?.[0];
}

/** `sinks[0].file.path`; a key that is not a plain word goes in brackets: `tables[public.*]`. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** A value in a message: double-quoted, with JSON escapes. */
export function quote(value: string): string {
  // An echoed value is cut: a 30 MB value makes a message nobody reads, and floods logs.
  if (value.length <= MAX_QUOTED) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, MAX_QUOTED))}… (${value.length} characters)`;
}

/** The most characters of a value a problem message echoes. */
const MAX_QUOTED = 200;

/**
 * A key path in a message: double-quoted as written, since table names can hold quotes
 * (`"tables["Sales"."Order Items"].topic"` reads better with them unescaped).
 */
export function quotePath(path: string): string {
  return `"${path}"`;
}

/** A table name or glob in a message; single-quoted when it holds double quotes. */
export function quoteName(name: string): string {
  return name.includes('"') && !name.includes("'") ? `'${name}'` : quote(name);
}

/** How a value appears after "found" in a message. */
export function describe(node: unknown, value?: ScalarValue): string {
  if (isMap(node)) return "a map";
  if (isSeq(node)) return "a list";
  if (!isScalar(node)) return "nothing";
  const shown = value === undefined ? node.value as ScalarValue : value;
  if (shown === null) return node.source === "" ? "nothing" : "null";
  if (typeof shown === "string") return quote(shown);
  return String(shown);
}

/** Types an unquoted value the way the YAML 1.2 core schema would have. */
export function typePlain(text: string): ScalarValue {
  if (/^(?:~|null|Null|NULL)?$/.test(text)) return null;
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^0o[0-7]+$/.test(text)) return parseInt(text.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(text)) {
    return Number(text);
  }
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (/^\.(?:nan|NaN|NAN)$/.test(text)) return NaN;
  return text;
}

export function isNull(node: unknown): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

/** The keys of one map, checked against the keys allowed there. */
export class Section {
  readonly field: Field;
  /** False when the map is absent or not a map; missing required keys are then not reported. */
  readonly present: boolean;
  readonly #checker: Checker;
  readonly #values = new Map<string, unknown>();
  readonly #keyOffsets = new Map<string, number>();

  constructor(
    checker: Checker,
    field: Field,
    shape: { keys: readonly string[]; expected: string },
  ) {
    this.#checker = checker;
    this.field = field;
    const node = field.node;
    if (node === undefined || isNull(node)) {
      this.present = node !== undefined; // `queue:` with nothing is an empty map
      return;
    }
    if (!isMap(node)) {
      checker.fail(field, shape.expected);
      this.present = false;
      return;
    }
    this.present = true;
    const where = field.path === "" ? "at the top level" : `in ${quotePath(field.path)}`;
    for (const pair of (node as YAMLMap).items) {
      const key = keyName(checker, pair.key, field);
      if (key === undefined) continue;
      const keyOffset = startOf(pair.key) ?? field.offset;
      const first = this.#keyOffsets.get(key);
      if (first !== undefined) {
        checker.report(
          keyOffset,
          `${
            quotePath(childPath(field.path, key))
          }: expected the key once, found it again (first at line ${checker.line(first)})`,
        );
        continue;
      }
      this.#keyOffsets.set(key, keyOffset);
      if (!shape.keys.includes(key)) {
        checker.report(
          keyOffset,
          `unknown key ${quote(key)} ${where}${suggestion(key, shape.keys)}`,
        );
        continue;
      }
      this.#values.set(key, pair.value);
    }
  }

  has(key: string): boolean {
    return this.#values.has(key);
  }

  /** The field under `key`; `undefined` when the key is absent or its alias is broken. */
  get(key: string): Field | undefined {
    if (!this.#values.has(key)) return undefined;
    const path = childPath(this.field.path, key);
    const raw = this.#values.get(key) ?? null;
    const node = raw === null ? null : this.#checker.deref(raw, path);
    if (node === undefined) return undefined;
    return { node, path, offset: startOf(node) ?? this.keyOffset(key) };
  }

  read<T>(key: string, read: Read<T>, fallback: T): T {
    const field = this.get(key);
    if (field === undefined) return fallback;
    const value = read(this.#checker, field);
    return value === undefined ? fallback : value;
  }

  required<T>(key: string, read: Read<T>, expected: string): T | undefined {
    if (!this.has(key)) {
      if (this.present) {
        const path = childPath(this.field.path, key);
        this.#checker.report(
          this.field.offset,
          `${quotePath(path)}: expected ${expected}, found no ${quote(key)} key`,
        );
      }
      return undefined;
    }
    const field = this.get(key);
    return field === undefined ? undefined : read(this.#checker, field);
  }

  /** The field under `key`, or an absent one (no node) when the key is absent. */
  at(key: string): Field {
    const path = childPath(this.field.path, key);
    return this.get(key) ?? { node: undefined, path, offset: this.keyOffset(key) };
  }

  keyOffset(key: string): number {
    return this.#keyOffsets.get(key) ?? this.field.offset;
  }
}

export function keyName(checker: Checker, key: unknown, parent: Field): string | undefined {
  if (isScalar(key)) return key.value === null ? "" : String(key.value);
  checker.report(
    startOf(key) ?? parent.offset,
    `${quotePath(parent.path || "(top level)")}: expected a key name, found ${
      describe(key)
    } as a key`,
  );
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Did you mean

/** `; did you mean "x"?` for the closest allowed word, or the list of allowed words. */
export function suggestion(word: string, allowed: readonly string[]): string {
  const best = closest(word, allowed);
  if (best !== undefined) return `; did you mean ${quote(best)}?`;
  return `; expected one of ${allowed.map(quote).join(", ")}`;
}

/** The candidate within edit distance 2 (ignoring case), or else one sharing a prefix. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const typed = word.toLowerCase();
  let best: { candidate: string; score: number } | undefined;
  for (const candidate of candidates) {
    const target = candidate.toLowerCase();
    let score = levenshtein(typed, target);
    if (score > 2) {
      const prefix = typed.length >= 2 && (target.startsWith(typed) || typed.startsWith(target));
      if (!prefix) continue;
      score = 3;
    }
    if (best === undefined || score < best.score) best = { candidate, score };
  }
  return best?.candidate;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Every alias of `doc` with the node it names: the last node anchored with that name before
 * the alias, in document order (as YAML resolves it). One walk, so a file with thousands of
 * aliases loads in linear time.
 */
function anchorsOf(doc: ReturnType<typeof parseDocument>): Map<Alias, unknown> {
  const anchored = new Map<string, unknown>();
  const resolved = new Map<Alias, unknown>();
  visit(doc, (_key, node) => {
    if (isAlias(node)) resolved.set(node, anchored.get(node.source));
    else if (isNode(node) && node.anchor !== undefined) anchored.set(node.anchor, node);
  });
  return resolved;
}
