/**
 * The smaller top-level sections: `transforms`, `queue`, `spill`, `http` and `log`.
 *
 * @module
 */

import { isMap, isScalar, type YAMLMap } from "npm:yaml@2.9.1";
import type {
  HttpConfig,
  LogConfig,
  OnErrorStep,
  QueueConfig,
  SpillConfig,
  TransformPermissions,
  TransformsConfig,
} from "./types.ts";
import { childPath, describe, startOf } from "./_yaml.ts";
import { DEAD_LETTER_SINK } from "./sinks.ts";
import {
  anyOf,
  choice,
  duration,
  filePath,
  integer,
  list,
  nullable,
  number,
  oneOrList,
  orVariable,
  type Reader,
  size,
  string,
} from "./_readers.ts";
import {
  defaultsOf,
  readSection,
  sectionReader,
  sectionSchema,
  type SectionSpec,
} from "./_fields.ts";

// Transforms

const STEP_WORDS = ["passthrough", "dead_letter", "skip", "stop"] as const;
const ON_ERROR_EXPECTED = "a step (passthrough, dead_letter, skip, stop) or a list of steps " +
  "like [retry: 3, dead_letter, stop]";

/** One step of `on_error`: a word, or `retry: N`. */
const ON_ERROR_STEP: Reader<OnErrorStep> = {
  expected: ON_ERROR_EXPECTED,
  jsonSchema: anyOf(
    orVariable({ enum: [...STEP_WORDS] }),
    {
      type: "object",
      properties: { retry: orVariable({ type: "integer", minimum: 1 }) },
      required: ["retry"],
      additionalProperties: false,
    },
  ),
  read: (checker, field) => {
    const node = field.node;
    if (isMap(node)) {
      const pairs = (node as YAMLMap).items;
      const pair = pairs[0];
      const key = pairs.length === 1 && isScalar(pair?.key) ? pair.key.value : undefined;
      if (key !== "retry") {
        return checker.fail(field, 'a step word, or "retry: N" (the times to run it again)');
      }
      const path = childPath(field.path, "retry");
      const value = checker.deref(pair!.value, path);
      if (value === undefined) return undefined;
      const times = integer(1).read(checker, {
        node: value,
        path,
        offset: startOf(value) ?? field.offset,
      });
      return times === undefined ? undefined : { action: "retry", times };
    }
    if (isScalar(node) && node.value === "retry") {
      return checker.fail(
        field,
        'a step; retry is written "retry: N" (the times to run it again) and followed by a ' +
          "step for events that still fail, as in [retry: 3, dead_letter]",
        '"retry"',
      );
    }
    const word = choice(STEP_WORDS).read(checker, field);
    return word === undefined ? undefined : { action: word };
  },
  represent: (step) => step.action === "retry" ? { retry: step.times } : step.action,
};

/**
 * `on_error`: one step or a list, tried in order: any `retry` steps, then the step for events
 * that still fail. Only `stop` may follow `dead_letter`, saying what happens when the
 * dead-letter sink cannot take the event (the pipeline stops with the slot held, as it does
 * for any sink that fails for good).
 */
const ON_ERROR_STEPS = oneOrList(ON_ERROR_STEP, ON_ERROR_EXPECTED);
const ON_ERROR: Reader<OnErrorStep[]> = {
  ...ON_ERROR_STEPS,
  read: (checker, field) => {
    const steps = ON_ERROR_STEPS.read(checker, field);
    if (steps === undefined) return undefined;
    const last = steps[steps.length - 1]!;
    if (last.action === "retry") {
      return checker.fail(
        field,
        "a step after retry, for events that still fail (passthrough, dead_letter, skip or stop)",
        "retry last",
      );
    }
    const ending = steps.findIndex((step) => step.action !== "retry");
    const rest = steps.slice(ending + 1);
    const deadLetterThenStop = steps[ending]!.action === "dead_letter" &&
      rest.length === 1 && rest[0]!.action === "stop";
    if (rest.length > 0 && !deadLetterThenStop) {
      return checker.fail(
        field,
        `nothing after ${steps[ending]!.action}, which ends the list (only stop may follow ` +
          "dead_letter: what happens when the dead-letter sink fails)",
        `${rest.map((step) => step.action).join(", ")} after it`,
      );
    }
    return steps;
  },
};

const BREAKER: SectionSpec<TransformsConfig["breaker"]> = {
  expected: "a map with failures, window and cooldown",
  fields: {
    failures: {
      key: "failures",
      reader: integer(1),
      default: 5,
      doc: "Failures of a transform within window that open its breaker.",
    },
    windowMs: {
      key: "window",
      reader: duration(),
      default: 30_000,
      doc: "Period over which failures are counted.",
    },
    cooldownMs: {
      key: "cooldown",
      reader: duration(),
      default: 30_000,
      doc: "How long an open breaker sends every event to on_error before it lets one " +
        "batch try the transform again (half-open).",
    },
  },
};

/** `host`, `host:port`, an IPv4 address (with a port) or `[IPv6]:port`, as Deno's `--allow-net`. */
const NET_HOST = string(
  "a host or host:port like api.internal:443",
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/,
);

/** The permissions of a transform (`transforms.allow`, or a table's `allow`); lists may be empty. */
export const PERMISSIONS: SectionSpec<TransformPermissions> = {
  expected: "a map with read, net and env lists",
  fields: {
    read: {
      key: "read",
      reader: list(filePath("a path"), "a list of paths like [data/rates.json]", { empty: true }),
      default: [],
      doc: "Files or folders the transform may read (relative to the pipeline file).",
    },
    net: {
      key: "net",
      reader: list(NET_HOST, "a list of hosts like [api.internal:443]", { empty: true }),
      default: [],
      doc: "Hosts (host or host:port, no scheme or wildcard) the transform may connect to.",
    },
    env: {
      key: "env",
      reader: list(string("a variable name"), "a list of variable names like [RATES_URL]", {
        empty: true,
      }),
      default: [],
      doc: "Environment variables the transform may read.",
    },
  },
};

/** The `transforms` section. */
export const TRANSFORMS: SectionSpec<TransformsConfig> = {
  expected: "a map with timeout, on_error, breaker, allow, dead_letter and types_dir",
  fields: {
    timeoutMs: {
      key: "timeout",
      reader: duration({ off: true }),
      default: 200,
      doc: "Time budget of a transform per event; a transform past it has its worker " +
        "terminated and restarted, and the event takes on_error. 0 or off for no limit.",
    },
    onError: {
      key: "on_error",
      reader: ON_ERROR,
      default: [{ action: "dead_letter" }],
      doc: "What happens to an event whose transform failed (threw, ran past its timeout, " +
        "returned something that is not an event) or whose breaker is open, tried in " +
        "order: retry: N runs it again up to N times, passthrough sends it unchanged " +
        "(marked untransformed), dead_letter writes it with the error to the dead-letter " +
        "sink, skip drops it (counted and logged), stop pauses reading until a new " +
        "version of the transform loads. Only stop may follow dead_letter: a dead-letter " +
        "sink that fails for good stops the pipeline, its slot held.",
    },
    breaker: {
      key: "breaker",
      reader: sectionReader(BREAKER),
      default: defaultsOf(BREAKER),
      doc: "The circuit breaker of each transform.",
    },
    allow: {
      key: "allow",
      reader: sectionReader(PERMISSIONS),
      default: defaultsOf(PERMISSIONS),
      doc: "What transforms may read, reach and see; nothing by default. A table's own " +
        "allow replaces it.",
    },
    deadLetter: {
      key: "dead_letter",
      reader: nullable(DEAD_LETTER_SINK),
      default: null,
      doc: "The dead-letter sink, like a sinks entry (file: { path: ... }); null for a " +
        "file beside the pipeline file, <name>.dead-letter.jsonl.",
    },
    typesDir: {
      key: "types_dir",
      reader: nullable(filePath("a folder path")),
      default: null,
      doc: "Folder where row types of the tables are written (as spillway types does) " +
        "when a table's columns change while the pipeline runs; null for none.",
    },
  },
};

// Queue, spill, http, log

/** The `queue` section. */
export const QUEUE: SectionSpec<QueueConfig> = {
  expected: "a map with capacity, max_bytes and high_watermark",
  fields: {
    capacity: {
      key: "capacity",
      reader: integer(1),
      default: 1_024,
      doc: "Events held between the source and the sinks.",
    },
    maxBytes: {
      key: "max_bytes",
      reader: size({ off: true }),
      default: 8_000_000,
      doc: "Bytes of change data (as the server sent them) held between the source and the " +
        "sinks, the batches the sinks are writing included; off for no bound but capacity.",
    },
    highWatermark: {
      key: "high_watermark",
      reader: number("a number above 0 and at most 1", { exclusiveMinimum: 0, maximum: 1 }),
      default: 0.8,
      doc: "Reading pauses above this fraction of capacity or of max_bytes.",
    },
  },
};

/** The `spill` section. */
export const SPILL: SectionSpec<SpillConfig> = {
  expected: "a map with memory_limit and dir",
  fields: {
    memoryLimitBytes: {
      key: "memory_limit",
      reader: size(),
      default: 16_000_000, // source/spill.ts: DEFAULT_SPILL_BYTES
      doc: "Bytes of streamed transactions held in memory; beyond them they go to disk.",
    },
    dir: {
      key: "dir",
      reader: nullable(filePath("a directory path")),
      default: null,
      doc: "Directory of spill files, relative to the pipeline file; null for the OS " +
        "temp directory.",
    },
  },
};

const HTTP_EXPECTED = "a map with listen, or off";
const LISTEN_EXPECTED = "an address like 127.0.0.1:9464, a port, or off";
const OFF: unknown[] = ["off", false, null];

function defaultHttp(): HttpConfig {
  return { listen: "127.0.0.1:9464", hostname: "127.0.0.1", port: 9464 };
}

const LISTEN: Reader<HttpConfig | null> = {
  expected: LISTEN_EXPECTED,
  jsonSchema: orVariable({
    anyOf: [
      { type: "string", pattern: "^(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9_.-]*):\\d{1,5}$" },
      { type: "integer", minimum: 0, maximum: 65_535 },
      { enum: OFF },
    ],
  }),
  read: (checker, field) => {
    const scalar = checker.scalar(field, LISTEN_EXPECTED);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (value === null || value === false || value === "off") return null;
    if (typeof value === "number") {
      if (Number.isInteger(value) && value >= 0 && value <= 65_535) {
        return { listen: String(value), hostname: "127.0.0.1", port: value };
      }
      return checker.fail(field, LISTEN_EXPECTED, String(value));
    }
    const match = typeof value === "string"
      ? /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$/.exec(value)
      : null;
    const port = Number(match?.[2]);
    if (typeof value !== "string" || match === null || port > 65_535) {
      return checker.fail(field, LISTEN_EXPECTED, describe(field.node, value));
    }
    const host = match[1]!.replace(/^\[(.*)\]$/, "$1");
    return { listen: value, hostname: host === "" ? "127.0.0.1" : host, port };
  },
  represent: (http) => http === null ? "off" : http.listen,
};

const HTTP_MAP: SectionSpec<{ listen: HttpConfig | null }> = {
  expected: HTTP_EXPECTED,
  fields: {
    listen: {
      key: "listen",
      reader: LISTEN,
      default: defaultHttp(),
      doc: "Address of /health and /metrics: host:port, a port (on 127.0.0.1), or off.",
    },
  },
};

/** The `http` section: a map with `listen`, or off (`null`). */
export const HTTP: Reader<HttpConfig | null> = {
  expected: HTTP_EXPECTED,
  jsonSchema: anyOf(sectionSchema(HTTP_MAP), orVariable({ enum: OFF })),
  read: (checker, field) => {
    if (!isMap(field.node)) {
      const scalar = checker.scalar(field, HTTP_EXPECTED);
      if (scalar === undefined) return null;
      if (scalar.value === null || scalar.value === false || scalar.value === "off") return null;
      checker.fail(field, HTTP_EXPECTED, describe(field.node, scalar.value));
      return null;
    }
    return readSection(checker, field, HTTP_MAP)?.listen;
  },
  represent: (http) => http === null ? "off" : { listen: http.listen },
};

/** What `http` is when the file does not say. */
export const DEFAULT_HTTP: HttpConfig = defaultHttp();

/** The `log` section. */
export const LOG: SectionSpec<LogConfig> = {
  expected: "a map with level and format",
  fields: {
    level: {
      key: "level",
      reader: choice(["debug", "info", "warn", "error"] as const),
      default: "info",
      doc: "Least severe level logged.",
    },
    format: {
      key: "format",
      reader: choice(["text", "json"] as const),
      default: "text",
      doc: "text: one readable line per entry; json: one JSON object per line.",
    },
  },
};
