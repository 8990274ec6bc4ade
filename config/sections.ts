/**
 * The smaller top-level sections: `transforms`, `queue`, `spill`, `http` and `log`.
 *
 * @module
 */

import { isMap } from "npm:yaml@2.9.1";
import type {
  HttpConfig,
  LogConfig,
  OnError,
  QueueConfig,
  SpillConfig,
  TransformsConfig,
} from "./types.ts";
import { describe } from "./_yaml.ts";
import {
  anyOf,
  choice,
  duration,
  filePath,
  integer,
  nullable,
  number,
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

const ON_ERROR: readonly OnError[] = ["passthrough", "dead_letter", "skip", "stop"];

const BREAKER: SectionSpec<TransformsConfig["breaker"]> = {
  expected: "a map with failures and window",
  fields: {
    failures: {
      key: "failures",
      reader: integer(1),
      default: 5,
      doc: "Failures of a table's transform within window that open its breaker.",
    },
    windowMs: {
      key: "window",
      reader: duration(),
      default: 30_000,
      doc: "Period over which failures are counted.",
    },
  },
};

/** The `transforms` section. */
export const TRANSFORMS: SectionSpec<TransformsConfig> = {
  expected: "a map with timeout, on_error, breaker and dead_letter_topic",
  fields: {
    timeoutMs: {
      key: "timeout",
      reader: duration({ off: true }),
      default: 200,
      doc: "Time budget of a transform per event; 0 or off for no limit.",
    },
    onError: {
      key: "on_error",
      reader: choice(ON_ERROR),
      default: "dead_letter",
      doc: "What happens to an event whose transform failed or whose breaker is open: " +
        "passthrough sends it unchanged, dead_letter to the dead-letter topic, skip drops " +
        "it, stop stops the pipeline.",
    },
    breaker: {
      key: "breaker",
      reader: sectionReader(BREAKER),
      default: defaultsOf(BREAKER),
      doc: "The circuit breaker of each table's transform.",
    },
    deadLetterTopic: {
      key: "dead_letter_topic",
      reader: nullable(string("a topic name")),
      default: null,
      doc: "Topic of events that failed; null lets the runner name it.",
    },
  },
};

// Queue, spill, http, log

/** The `queue` section. */
export const QUEUE: SectionSpec<QueueConfig> = {
  expected: "a map with capacity and high_watermark",
  fields: {
    capacity: {
      key: "capacity",
      reader: integer(1),
      default: 10_000,
      doc: "Events held between the source and the sinks.",
    },
    highWatermark: {
      key: "high_watermark",
      reader: number("a number above 0 and at most 1", { exclusiveMinimum: 0, maximum: 1 }),
      default: 0.8,
      doc: "Reading pauses above this fraction of capacity.",
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
      default: 64_000_000,
      doc: "Bytes of a streamed transaction held in memory; beyond them it goes to disk.",
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
