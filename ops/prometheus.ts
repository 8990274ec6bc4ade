import { errorMessage } from "../errors.ts";
/**
 * A small Prometheus registry with no dependencies: counters, gauges and
 * histograms, rendered in the text exposition format 0.0.4. The Spillway metric
 * set is in `metrics.ts`.
 *
 * On the hot path, bind a labelled metric once with `labels()` and keep the
 * child: its `inc()` is one comparison and one addition.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * const events = registry.counter("app_events_total", "Events seen", ["op"]);
 * const inserts = events.labels({ op: "c" });
 * inserts.inc();
 * assert(registry.render().includes('app_events_total{op="c"} 1\n'));
 * ```
 *
 * @module
 */

/** The `Content-Type` of {@linkcode MetricsRegistry.render}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value; numbers are written with `String()`. */
export type LabelValue = string | number;

/** Values for every label name `L` of a metric, no more and no fewer. */
export type Labels<L extends string> = { readonly [K in L]: LabelValue };

/** The metric types this registry renders. */
export type MetricType = "counter" | "gauge" | "histogram";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LABEL_VALUE_ESCAPES = /[\\"\n]/;
const HELP_ESCAPES = /[\\\n]/;

// ---------------------------------------------------------------------------------------
// Metrics and their children

/**
 * What counters, gauges and histograms share: a name, help text, label names,
 * and one child per distinct set of label values.
 */
export abstract class Metric<L extends string, C> {
  /** The metric name as rendered. */
  readonly name: string;
  /** One line of help text. */
  readonly help: string;
  /** Label names in the order they are rendered. */
  readonly labelNames: readonly L[];
  /** The `# TYPE` of this metric. */
  abstract readonly type: MetricType;
  /** Children keyed by their rendered label pairs (`a="x",b="y"`), in creation order. */
  readonly #children = new Map<string, C>();

  constructor(name: string, help: string, labelNames: readonly L[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /**
   * The child for these label values, created on first use. Keep it to make
   * later updates cheap.
   */
  labels(labels: Labels<L>): C {
    const key = labelPairs(this.name, this.labelNames, labels);
    return this.#children.get(key) ?? this.#add(key);
  }

  /** Forgets the child for these label values so it is no longer rendered. */
  remove(labels: Labels<L>): boolean {
    return this.#children.delete(labelPairs(this.name, this.labelNames, labels));
  }

  /** Forgets every child; an unlabelled metric goes back to zero. */
  reset(): void {
    this.#children.clear();
  }

  /** The child of an unlabelled metric; an error for a labelled one. */
  protected unlabelled(method: string): C {
    if (this.labelNames.length > 0) {
      throw new TypeError(
        `Metric "${this.name}" has labels ${quoteList(this.labelNames)}: ` +
          `pass them to ${method}() or bind them with labels()`,
      );
    }
    return this.#children.get("") ?? this.#add("");
  }

  /** Children with their rendered label pairs; an unlabelled metric always has one. */
  protected children(): Iterable<[string, C]> {
    if (this.labelNames.length === 0 && !this.#children.has("")) this.#add("");
    return this.#children.entries();
  }

  /** Makes the child for one set of label values. */
  protected abstract newChild(): C;

  /** Appends this metric's sample lines (no `# HELP`/`# TYPE`) to `lines`. */
  abstract renderSamples(lines: string[]): void;

  #add(key: string): C {
    const child = this.newChild();
    this.#children.set(key, child);
    return child;
  }
}

/** One labelled series of a {@linkcode Counter}. */
export class CounterChild {
  readonly #name: string;
  #value = 0;

  constructor(name: string) {
    this.#name = name;
  }

  /** Adds `n` (default 1); `n` must not be negative. */
  inc(n = 1): void {
    if (!(n >= 0)) {
      throw new RangeError(`Counter "${this.#name}" can only go up: cannot add ${String(n)}`);
    }
    this.#value += n;
  }

  /** The current value. */
  get(): number {
    return this.#value;
  }
}

/**
 * A value that only goes up (it starts again at 0 when the process restarts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * const reconnects = registry.counter("app_reconnects_total", "Reconnections");
 * reconnects.inc();
 * reconnects.inc(2);
 * assert(reconnects.get() === 3);
 * ```
 */
export class Counter<L extends string = never> extends Metric<L, CounterChild> {
  readonly type = "counter";

  /** Adds `n` (default 1) to an unlabelled counter. */
  inc(n?: number): void;
  /** Adds `n` (default 1) to the series with these labels. */
  inc(labels: Labels<L>, n?: number): void;
  inc(labelsOrN?: Labels<L> | number, n?: number): void {
    if (typeof labelsOrN === "object") this.labels(labelsOrN).inc(n);
    else this.unlabelled("inc").inc(labelsOrN);
  }

  /** The value of an unlabelled counter, or of the series with these labels. */
  get(labels?: Labels<L>): number {
    return (labels === undefined ? this.unlabelled("get") : this.labels(labels)).get();
  }

  protected newChild(): CounterChild {
    return new CounterChild(this.name);
  }

  renderSamples(lines: string[]): void {
    for (const [pairs, child] of this.children()) {
      lines.push(sample(this.name, pairs, child.get()));
    }
  }
}

/** One labelled series of a {@linkcode Gauge}. */
export class GaugeChild {
  #value = 0;

  /** Sets the value. */
  set(value: number): void {
    this.#value = value;
  }

  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.#value += n;
  }

  /** Subtracts `n` (default 1). */
  dec(n = 1): void {
    this.#value -= n;
  }

  /** The current value. */
  get(): number {
    return this.#value;
  }
}

/** Options of {@linkcode MetricsRegistry.gauge}. */
export interface GaugeOptions<L extends string> {
  /**
   * Called by {@linkcode MetricsRegistry.render} before the gauge is rendered,
   * to set values read lazily (memory, lag). It must not block; an error it
   * throws fails the render with the gauge's name.
   */
  collect?: (gauge: Gauge<L>) => void;
}

/**
 * A value that goes up and down, set directly or read at render time by a
 * `collect` callback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * let depth = 0;
 * registry.gauge("app_queue_depth", "Queued events", [], {
 *   collect: (gauge) => gauge.set(depth),
 * });
 * depth = 42;
 * assert(registry.render().includes("app_queue_depth 42\n"));
 * ```
 */
export class Gauge<L extends string = never> extends Metric<L, GaugeChild> {
  readonly type = "gauge";
  readonly #collect: ((gauge: Gauge<L>) => void) | undefined;

  constructor(name: string, help: string, labelNames: readonly L[], options: GaugeOptions<L>) {
    super(name, help, labelNames);
    this.#collect = options.collect;
  }

  /** Sets an unlabelled gauge. */
  set(value: number): void;
  /** Sets the series with these labels. */
  set(labels: Labels<L>, value: number): void;
  set(labelsOrValue: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === "object") this.labels(labelsOrValue).set(value ?? Number.NaN);
    else this.unlabelled("set").set(labelsOrValue);
  }

  /** Adds `n` (default 1) to an unlabelled gauge. */
  inc(n?: number): void;
  /** Adds `n` (default 1) to the series with these labels. */
  inc(labels: Labels<L>, n?: number): void;
  inc(labelsOrN?: Labels<L> | number, n?: number): void {
    if (typeof labelsOrN === "object") this.labels(labelsOrN).inc(n);
    else this.unlabelled("inc").inc(labelsOrN);
  }

  /** Subtracts `n` (default 1) from an unlabelled gauge. */
  dec(n?: number): void;
  /** Subtracts `n` (default 1) from the series with these labels. */
  dec(labels: Labels<L>, n?: number): void;
  dec(labelsOrN?: Labels<L> | number, n?: number): void {
    if (typeof labelsOrN === "object") this.labels(labelsOrN).dec(n);
    else this.unlabelled("dec").dec(labelsOrN);
  }

  /** The value of an unlabelled gauge, or of the series with these labels. */
  get(labels?: Labels<L>): number {
    return (labels === undefined ? this.unlabelled("get") : this.labels(labels)).get();
  }

  /** Runs the `collect` callback, if any; {@linkcode MetricsRegistry.render} calls it. */
  collect(): void {
    if (this.#collect === undefined) return;
    try {
      this.#collect(this);
    } catch (error) {
      throw new Error(`Cannot collect metric "${this.name}": ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  protected newChild(): GaugeChild {
    return new GaugeChild();
  }

  renderSamples(lines: string[]): void {
    for (const [pairs, child] of this.children()) {
      lines.push(sample(this.name, pairs, child.get()));
    }
  }
}

/** A histogram series as counted so far; bucket counts are cumulative. */
export interface HistogramSnapshot {
  /** One entry per upper bound, the last one `Infinity`. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** One labelled series of a {@linkcode Histogram}. */
export class HistogramChild {
  readonly #bounds: readonly number[];
  readonly #now: () => number;
  /** Observations per bucket, not cumulative; the last slot is `+Inf`. */
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[], now: () => number) {
    this.#bounds = bounds;
    this.#now = now;
    this.#counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Counts one observation. NaN lands only in the `+Inf` bucket, as in Prometheus' Go client. */
  observe(value: number): void {
    const bounds = this.#bounds;
    let index = 0;
    while (index < bounds.length && !(value <= bounds[index]!)) index++;
    this.#counts[index]!++;
    this.#sum += value;
    this.#count++;
  }

  /**
   * Starts a timer; the returned function observes the seconds elapsed and
   * returns them.
   */
  startTimer(): () => number {
    const start = this.#now();
    return () => {
      const seconds = (this.#now() - start) / 1000;
      this.observe(seconds);
      return seconds;
    };
  }

  /** The counts so far, cumulative per bucket. */
  get(): HistogramSnapshot {
    const buckets: { le: number; count: number }[] = [];
    let cumulative = 0;
    for (let index = 0; index < this.#counts.length; index++) {
      cumulative += this.#counts[index]!;
      buckets.push({ le: this.#bounds[index] ?? Infinity, count: cumulative });
    }
    return { buckets, sum: this.#sum, count: this.#count };
  }
}

/**
 * Observations counted into buckets by upper bound, rendered as cumulative
 * `_bucket{le="…"}` series with `_sum` and `_count`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * const writes = registry.histogram("app_write_seconds", "Write time", [0.1, 1], ["sink"]);
 * writes.observe({ sink: "stdout" }, 0.05);
 * writes.observe({ sink: "stdout" }, 5);
 * const text = registry.render();
 * assert(text.includes('app_write_seconds_bucket{sink="stdout",le="0.1"} 1\n'));
 * assert(text.includes('app_write_seconds_bucket{sink="stdout",le="+Inf"} 2\n'));
 * ```
 */
export class Histogram<L extends string = never> extends Metric<L, HistogramChild> {
  readonly type = "histogram";
  /** Upper bounds in increasing order, without the implicit `+Inf`. */
  readonly buckets: readonly number[];
  readonly #now: () => number;

  constructor(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly L[],
    now: () => number,
  ) {
    super(name, help, labelNames);
    this.buckets = buckets;
    this.#now = now;
  }

  /** Counts one observation of an unlabelled histogram. */
  observe(value: number): void;
  /** Counts one observation of the series with these labels. */
  observe(labels: Labels<L>, value: number): void;
  observe(labelsOrValue: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === "object") {
      this.labels(labelsOrValue).observe(value ?? Number.NaN);
    } else {
      this.unlabelled("observe").observe(labelsOrValue);
    }
  }

  /** Starts a timer on an unlabelled histogram, or on the series with these labels. */
  startTimer(labels?: Labels<L>): () => number {
    return (labels === undefined ? this.unlabelled("startTimer") : this.labels(labels))
      .startTimer();
  }

  /** The counts of an unlabelled histogram, or of the series with these labels. */
  get(labels?: Labels<L>): HistogramSnapshot {
    return (labels === undefined ? this.unlabelled("get") : this.labels(labels)).get();
  }

  protected newChild(): HistogramChild {
    return new HistogramChild(this.buckets, this.#now);
  }

  renderSamples(lines: string[]): void {
    const bucketName = `${this.name}_bucket`;
    for (const [pairs, child] of this.children()) {
      const snapshot = child.get();
      const prefix = pairs === "" ? "" : `${pairs},`;
      for (const bucket of snapshot.buckets) {
        lines.push(sample(bucketName, `${prefix}le="${formatFloat(bucket.le)}"`, bucket.count));
      }
      lines.push(sample(`${this.name}_sum`, pairs, snapshot.sum));
      lines.push(sample(`${this.name}_count`, pairs, snapshot.count));
    }
  }
}

// ---------------------------------------------------------------------------------------
// The registry

/** What the registry needs of a metric to render it. */
interface Renderable {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  renderSamples(lines: string[]): void;
  collect?(): void;
}

/** Options of {@linkcode MetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Monotonic clock in milliseconds for histogram timers. Default `performance.now`. */
  now?: () => number;
}

/**
 * Metrics by name, rendered together for a Prometheus scrape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * registry.counter("app_transactions_total", "Transactions committed").inc();
 * assert.equal(
 *   registry.render(),
 *   "# HELP app_transactions_total Transactions committed\n" +
 *     "# TYPE app_transactions_total counter\n" +
 *     "app_transactions_total 1\n",
 * );
 * ```
 */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Renderable>();
  /** Every sample name in use (a histogram uses four) and the metric that uses it. */
  readonly #sampleNames = new Map<string, string>();
  readonly #now: () => number;

  constructor(options: MetricsRegistryOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
  }

  /** Registers a counter. Names and label names are checked; a taken name is an error. */
  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Counter<L> {
    this.#check(name, help, labelNames, [name]);
    return this.#add(new Counter(name, help, [...labelNames]), [name]);
  }

  /** Registers a gauge, optionally with a `collect` callback run at render time. */
  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    options: GaugeOptions<L> = {},
  ): Gauge<L> {
    this.#check(name, help, labelNames, [name]);
    return this.#add(new Gauge(name, help, [...labelNames], options), [name]);
  }

  /**
   * Registers a histogram with these upper bounds (strictly increasing; `+Inf`
   * is added). The label name `le` is reserved.
   */
  histogram<L extends string = never>(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    const sampleNames = [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
    this.#check(name, help, labelNames, sampleNames);
    if (labelNames.includes("le" as L)) {
      throw new TypeError(`Cannot register histogram "${name}": label name "le" is reserved`);
    }
    const bounds = checkBuckets(name, buckets);
    return this.#add(new Histogram(name, help, bounds, [...labelNames], this.#now), sampleNames);
  }

  /**
   * Every metric in registration order, in the text exposition format 0.0.4,
   * after running gauges' `collect` callbacks. Ends with a line feed unless
   * empty.
   */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics.values()) {
      metric.collect?.();
      lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
      lines.push(`# TYPE ${metric.name} ${metric.type}`);
      metric.renderSamples(lines);
    }
    return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
  }

  #check(name: string, help: string, labelNames: readonly string[], sampleNames: string[]): void {
    if (typeof name !== "string" || !METRIC_NAME.test(name)) {
      throw new TypeError(
        `Invalid metric name ${JSON.stringify(name)}: ` +
          "use letters, digits, _ and :, not starting with a digit",
      );
    }
    if (typeof help !== "string") {
      throw new TypeError(`Cannot register metric "${name}": help must be a string`);
    }
    const seen = new Set<string>();
    for (const label of labelNames) {
      if (typeof label !== "string" || !LABEL_NAME.test(label)) {
        throw new TypeError(
          `Invalid label name ${JSON.stringify(label)} for metric "${name}": ` +
            "use letters, digits and _, not starting with a digit",
        );
      }
      if (label.startsWith("__")) {
        throw new TypeError(
          `Invalid label name "${label}" for metric "${name}": names starting with "__" are reserved`,
        );
      }
      if (seen.has(label)) {
        throw new TypeError(`Cannot register metric "${name}": label "${label}" is listed twice`);
      }
      seen.add(label);
    }
    for (const sampleName of sampleNames) {
      const owner = this.#sampleNames.get(sampleName);
      if (owner === name) throw new Error(`Metric "${name}" is already registered`);
      if (owner !== undefined) {
        throw new Error(
          `Cannot register metric "${name}": its series "${sampleName}" clash with metric "${owner}"`,
        );
      }
    }
  }

  #add<M extends Renderable>(metric: M, sampleNames: readonly string[]): M {
    for (const sampleName of sampleNames) this.#sampleNames.set(sampleName, metric.name);
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}

// ---------------------------------------------------------------------------------------
// Text format helpers

/**
 * A sample value as Prometheus writes it: `NaN`, `+Inf`, `-Inf`, or the
 * shortest decimal that reads back to the same number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatFloat } from "./prometheus.ts";
 * assert.deepEqual([0.5, Infinity, -Infinity, NaN].map(formatFloat), ["0.5", "+Inf", "-Inf", "NaN"]);
 * ```
 */
export function formatFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * A label value escaped for the text format: backslash, double quote and line feed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeLabelValue } from "./prometheus.ts";
 * assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
 * ```
 */
export function escapeLabelValue(value: string): string {
  if (!LABEL_VALUE_ESCAPES.test(value)) return value;
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(help: string): string {
  if (!HELP_ESCAPES.test(help)) return help;
  return help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function sample(name: string, pairs: string, value: number): string {
  return pairs === "" ? `${name} ${formatFloat(value)}` : `${name}{${pairs}} ${formatFloat(value)}`;
}

/** `a="x",b="y"` in declared label order; also the key of a child. */
function labelPairs(
  metricName: string,
  names: readonly string[],
  labels: Readonly<Record<string, unknown>>,
): string {
  let given = 0;
  for (const _ in labels) given++;
  if (given !== names.length) throw labelMismatch(metricName, names, labels);
  let pairs = "";
  for (let index = 0; index < names.length; index++) {
    const name = names[index]!;
    const value = labels[name];
    if (typeof value === "string") {
      pairs += `${index === 0 ? "" : ","}${name}="${escapeLabelValue(value)}"`;
    } else if (typeof value === "number") {
      pairs += `${index === 0 ? "" : ","}${name}="${String(value)}"`;
    } else if (value === undefined) {
      throw labelMismatch(metricName, names, labels);
    } else {
      throw new TypeError(
        `Metric "${metricName}" label "${name}" must be a string or a number, got ${typeof value}`,
      );
    }
  }
  return pairs;
}

function labelMismatch(
  metricName: string,
  names: readonly string[],
  labels: Readonly<Record<string, unknown>>,
): TypeError {
  const given = Object.keys(labels);
  return new TypeError(
    `Metric "${metricName}" needs labels ${names.length === 0 ? "(none)" : quoteList(names)}: ` +
      `got ${given.length === 0 ? "(none)" : quoteList(given)}`,
  );
}

function checkBuckets(name: string, buckets: readonly number[]): number[] {
  const bounds = buckets.at(-1) === Infinity ? buckets.slice(0, -1) : [...buckets];
  for (let index = 0; index < bounds.length; index++) {
    const bound = bounds[index]!;
    if (typeof bound !== "number" || !Number.isFinite(bound)) {
      throw new TypeError(
        `Cannot register histogram "${name}": bucket ${String(bound)} is not a finite number`,
      );
    }
    const previous = bounds[index - 1];
    if (previous !== undefined && !(bound > previous)) {
      throw new TypeError(
        `Cannot register histogram "${name}": buckets must increase, ${bound} follows ${previous}`,
      );
    }
  }
  return bounds;
}

function quoteList(names: readonly string[]): string {
  return names.map((name) => `"${name}"`).join(", ");
}
