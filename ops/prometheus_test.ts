import assert from "node:assert/strict";
import { escapeLabelValue, formatFloat, MetricsRegistry } from "./prometheus.ts";

Deno.test("render: golden exposition text for a small registry", () => {
  const registry = new MetricsRegistry();
  const events = registry.counter("app_events_total", "Events seen, by table and op", [
    "table",
    "op",
  ]);
  registry.counter("app_restarts_total", "Restarts\nwith a \\ in help");
  const depth = registry.gauge("app_queue_depth", "Queued events");
  const writes = registry.histogram("app_write_seconds", "Write time", [0.01, 0.1, 1], ["sink"]);
  registry.gauge("app_idle", "Labelled and never set", ["sink"]);

  events.labels({ table: "public.orders", op: "c" }).inc();
  events.inc({ table: "public.orders", op: "c" }, 2);
  events.inc({ table: "public.items", op: "d" });
  depth.set(7);
  depth.dec(2);
  writes.observe({ sink: "kafka" }, 0.005);
  writes.observe({ sink: "kafka" }, 0.1);
  writes.observe({ sink: "kafka" }, 3);
  writes.observe({ sink: "stdout" }, 0.5);

  assert.equal(
    registry.render(),
    `# HELP app_events_total Events seen, by table and op
# TYPE app_events_total counter
app_events_total{table="public.orders",op="c"} 3
app_events_total{table="public.items",op="d"} 1
# HELP app_restarts_total Restarts\\nwith a \\\\ in help
# TYPE app_restarts_total counter
app_restarts_total 0
# HELP app_queue_depth Queued events
# TYPE app_queue_depth gauge
app_queue_depth 5
# HELP app_write_seconds Write time
# TYPE app_write_seconds histogram
app_write_seconds_bucket{sink="kafka",le="0.01"} 1
app_write_seconds_bucket{sink="kafka",le="0.1"} 2
app_write_seconds_bucket{sink="kafka",le="1"} 2
app_write_seconds_bucket{sink="kafka",le="+Inf"} 3
app_write_seconds_sum{sink="kafka"} 3.105
app_write_seconds_count{sink="kafka"} 3
app_write_seconds_bucket{sink="stdout",le="0.01"} 0
app_write_seconds_bucket{sink="stdout",le="0.1"} 0
app_write_seconds_bucket{sink="stdout",le="1"} 1
app_write_seconds_bucket{sink="stdout",le="+Inf"} 1
app_write_seconds_sum{sink="stdout"} 0.5
app_write_seconds_count{sink="stdout"} 1
# HELP app_idle Labelled and never set
# TYPE app_idle gauge
`,
  );
});

Deno.test("render: an empty registry is empty", () => {
  assert.equal(new MetricsRegistry().render(), "");
});

Deno.test("render: an unlabelled histogram has only le on its buckets", () => {
  const registry = new MetricsRegistry();
  registry.histogram("h", "H", [1]).observe(1);
  assert.equal(
    registry.render(),
    '# HELP h H\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
  );
});

Deno.test("label values: backslash, double quote and line feed are escaped", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter("c_total", "C", ["v"]);
  counter.inc({ v: 'say "hi"\\now\nbye' });
  counter.inc({ v: "plain: {}=,'" });
  counter.inc({ v: 42 });
  assert.equal(
    registry.render(),
    "# HELP c_total C\n# TYPE c_total counter\n" +
      'c_total{v="say \\"hi\\"\\\\now\\nbye"} 1\n' +
      'c_total{v="plain: {}=,\'"} 1\n' +
      'c_total{v="42"} 1\n',
  );
  assert.equal(escapeLabelValue("unchanged"), "unchanged");
  assert.equal(escapeLabelValue('\\\n"'), '\\\\\\n\\"');
});

Deno.test("label values: distinct values never share a series", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter("c_total", "C", ["a", "b"]);
  counter.inc({ a: 'x",b="y', b: "z" });
  counter.inc({ a: "x", b: 'y",b="z' });
  assert.equal(counter.get({ a: 'x",b="y', b: "z" }), 1);
  assert.equal(counter.get({ a: "x", b: 'y",b="z' }), 1);
});

Deno.test("floats: NaN, +Inf, -Inf and JavaScript's shortest decimals", () => {
  assert.deepEqual(
    [NaN, Infinity, -Infinity, 0, -0, 1.5, 1e21, 1e-7, 2 ** 53].map(formatFloat),
    ["NaN", "+Inf", "-Inf", "0", "0", "1.5", "1e+21", "1e-7", "9007199254740992"],
  );
  const registry = new MetricsRegistry();
  const gauge = registry.gauge("g", "G", ["k"]);
  gauge.set({ k: "nan" }, NaN);
  gauge.set({ k: "inf" }, Infinity);
  gauge.set({ k: "ninf" }, -Infinity);
  assert.equal(
    registry.render(),
    '# HELP g G\n# TYPE g gauge\ng{k="nan"} NaN\ng{k="inf"} +Inf\ng{k="ninf"} -Inf\n',
  );
});

Deno.test("histogram: buckets are inclusive upper bounds, cumulative, with +Inf", () => {
  const registry = new MetricsRegistry();
  const histogram = registry.histogram("h", "H", [1, 2, 5]);
  for (const value of [0, 1, 1.0000001, 2, 4.9, 5, 6, -3]) histogram.observe(value);
  assert.deepEqual(histogram.get(), {
    buckets: [
      { le: 1, count: 3 },
      { le: 2, count: 5 },
      { le: 5, count: 7 },
      { le: Infinity, count: 8 },
    ],
    sum: 0 + 1 + 1.0000001 + 2 + 4.9 + 5 + 6 - 3,
    count: 8,
  });
});

Deno.test("histogram: NaN lands only in +Inf and makes the sum NaN", () => {
  const histogram = new MetricsRegistry().histogram("h", "H", [1]);
  histogram.observe(NaN);
  assert.deepEqual(histogram.get().buckets.map((bucket) => bucket.count), [0, 1]);
  assert(Number.isNaN(histogram.get().sum));
});

Deno.test("histogram: a trailing Infinity bound is the implicit +Inf", () => {
  const histogram = new MetricsRegistry().histogram("h", "H", [1, Infinity]);
  assert.deepEqual(histogram.buckets, [1]);
  assert.equal(histogram.get().buckets.length, 2);
});

Deno.test("histogram: buckets must be finite and strictly increasing", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.histogram("a", "A", [1, 1]), {
    message: 'Cannot register histogram "a": buckets must increase, 1 follows 1',
  });
  assert.throws(() => registry.histogram("b", "B", [2, 1]), /buckets must increase, 1 follows 2/);
  assert.throws(() => registry.histogram("c", "C", [NaN]), /bucket NaN is not a finite number/);
  assert.throws(() => registry.histogram("d", "D", [-Infinity, 1]), /-Infinity/);
  assert.throws(() => registry.histogram("e", "E", [1], ["le"]), {
    message: 'Cannot register histogram "e": label name "le" is reserved',
  });
  // A refused histogram does not take its names.
  for (const name of ["a", "b", "c", "d", "e"]) registry.histogram(name, "ok", [1]);
});

Deno.test("histogram: startTimer observes elapsed seconds from the registry clock", () => {
  let now = 1000;
  const registry = new MetricsRegistry({ now: () => now });
  const histogram = registry.histogram("h_seconds", "H", [0.01, 0.025, 0.05, 0.1], ["sink"]);
  const end = histogram.startTimer({ sink: "file" });
  now += 30;
  assert.equal(end(), 0.03);
  const snapshot = histogram.get({ sink: "file" });
  assert.equal(snapshot.count, 1);
  assert.equal(snapshot.buckets.find((bucket) => bucket.le === 0.05)?.count, 1);
  assert.equal(snapshot.buckets.find((bucket) => bucket.le === 0.025)?.count, 0);
});

Deno.test("collect: called at each render to set values read lazily", () => {
  const registry = new MetricsRegistry();
  let calls = 0;
  registry.gauge("lazy", "Lazy", [], { collect: (gauge) => gauge.set(++calls * 10) });
  registry.gauge("by_slot", "By slot", ["slot"], {
    collect: (gauge) => gauge.set({ slot: "orders" }, calls),
  });
  assert.equal(calls, 0);
  assert.match(registry.render(), /^lazy 10$/m);
  assert.match(registry.render(), /^lazy 20$/m);
  assert.match(registry.render(), /^by_slot\{slot="orders"\} 3$/m);
  assert.equal(calls, 3);
});

Deno.test("collect: an error names the metric", () => {
  const registry = new MetricsRegistry();
  registry.gauge("broken", "Broken", [], {
    collect: () => {
      throw new Error("slot query not ready");
    },
  });
  assert.throws(() => registry.render(), {
    message: 'Cannot collect metric "broken": slot query not ready',
  });
});

Deno.test("names: invalid metric names are refused clearly", () => {
  const registry = new MetricsRegistry();
  for (const name of ["", "1abc", "with-dash", "with space", "é", "a.b"]) {
    assert.throws(
      () => registry.counter(name, "help"),
      (error: Error) =>
        error instanceof TypeError &&
        error.message === `Invalid metric name ${JSON.stringify(name)}: ` +
            "use letters, digits, _ and :, not starting with a digit",
    );
  }
  for (const name of ["a", "_a", "a:b", "A_1:z", ":x"]) registry.gauge(name, "ok");
});

Deno.test("names: invalid, reserved and repeated label names are refused", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.counter("a", "A", ["bad-label"]), {
    message: 'Invalid label name "bad-label" for metric "a": ' +
      "use letters, digits and _, not starting with a digit",
  });
  assert.throws(() => registry.counter("b", "B", ["9x"]), /Invalid label name "9x"/);
  assert.throws(() => registry.counter("c", "C", ["a:b"]), /Invalid label name "a:b"/);
  assert.throws(() => registry.counter("d", "D", ["__name__"]), {
    message: 'Invalid label name "__name__" for metric "d": names starting with "__" are reserved',
  });
  assert.throws(() => registry.counter("e", "E", ["x", "x"]), {
    message: 'Cannot register metric "e": label "x" is listed twice',
  });
  // A refused metric does not take its name.
  registry.counter("a", "A", ["good_label"]);
});

Deno.test("names: a name is registered once, histogram series included", () => {
  const registry = new MetricsRegistry();
  registry.counter("x_total", "X");
  assert.throws(() => registry.gauge("x_total", "X"), {
    message: 'Metric "x_total" is already registered',
  });
  registry.histogram("lat", "Lat", [1]);
  assert.throws(() => registry.counter("lat_count", "C"), {
    message: 'Cannot register metric "lat_count": its series "lat_count" clash with metric "lat"',
  });
  registry.gauge("size_sum", "S");
  assert.throws(() => registry.histogram("size", "S", [1]), /clash with metric "size_sum"/);
  registry.gauge("size", "now free again");
});

Deno.test("labels: missing, extra and wrongly typed labels are errors", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter("e_total", "E", ["table", "op"]);
  const untyped = counter as unknown as { inc(labels: Record<string, unknown>): void };
  assert.throws(() => untyped.inc({ table: "t" }), {
    message: 'Metric "e_total" needs labels "table", "op": got "table"',
  });
  assert.throws(() => untyped.inc({ table: "t", op: "c", extra: "x" }), {
    message: 'Metric "e_total" needs labels "table", "op": got "table", "op", "extra"',
  });
  assert.throws(() => untyped.inc({ table: "t", oops: "c" }), /needs labels "table", "op"/);
  assert.throws(() => untyped.inc({ table: "t", op: true }), {
    message: 'Metric "e_total" label "op" must be a string or a number, got boolean',
  });
  assert.throws(() => counter.inc(), {
    message:
      'Metric "e_total" has labels "table", "op": pass them to inc() or bind them with labels()',
  });
  const plain = registry.counter("p_total", "P") as unknown as {
    inc(labels: Record<string, unknown>): void;
  };
  assert.throws(() => plain.inc({ op: "c" }), {
    message: 'Metric "p_total" needs labels (none): got "op"',
  });
});

Deno.test("labels: a bound child is cached and shared with inc(labels)", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter("e_total", "E", ["table", "op"]);
  const child = counter.labels({ table: "public.orders", op: "c" });
  assert.equal(counter.labels({ op: "c", table: "public.orders" }), child);
  child.inc();
  counter.inc({ table: "public.orders", op: "c" }, 4);
  assert.equal(child.get(), 5);
});

Deno.test("labels: remove and reset forget series", () => {
  const registry = new MetricsRegistry();
  const gauge = registry.gauge("g", "G", ["sink"]);
  gauge.set({ sink: "a" }, 1);
  gauge.set({ sink: "b" }, 2);
  assert.equal(gauge.remove({ sink: "a" }), true);
  assert.equal(gauge.remove({ sink: "a" }), false);
  assert.equal(registry.render(), '# HELP g G\n# TYPE g gauge\ng{sink="b"} 2\n');
  gauge.reset();
  assert.equal(registry.render(), "# HELP g G\n# TYPE g gauge\n");
  const plain = registry.counter("p_total", "P");
  plain.inc(3);
  plain.reset();
  assert.equal(plain.get(), 0);
  assert.match(registry.render(), /^p_total 0$/m);
});

Deno.test("counter: only goes up", () => {
  const counter = new MetricsRegistry().counter("c_total", "C");
  assert.throws(() => counter.inc(-1), {
    name: "RangeError",
    message: 'Counter "c_total" can only go up: cannot add -1',
  });
  assert.throws(() => counter.inc(NaN), /cannot add NaN/);
  counter.inc(0);
  counter.inc(0.5);
  assert.equal(counter.get(), 0.5);
});

Deno.test("gauge: set, inc and dec, unlabelled and labelled", () => {
  const registry = new MetricsRegistry();
  const plain = registry.gauge("p", "P");
  plain.inc();
  plain.inc(4);
  plain.dec();
  assert.equal(plain.get(), 4);
  plain.set(-2.5);
  assert.equal(plain.get(), -2.5);
  const labelled = registry.gauge("l", "L", ["q"]);
  labelled.inc({ q: "a" }, 3);
  labelled.dec({ q: "a" });
  assert.equal(labelled.get({ q: "a" }), 2);
});

/**
 * Calls made to the methods a label lookup uses (Map lookups of the rendered label pairs, the
 * RegExp that checks label values for escapes) while `body` runs.
 */
function lookupCalls(body: () => void): number {
  const methods: [object, string][] = [
    [Map.prototype, "get"],
    [Map.prototype, "has"],
    [RegExp.prototype, "test"],
    [RegExp.prototype, "exec"],
  ];
  const originals = methods.map(([proto, name]) =>
    Reflect.get(proto, name) as (...args: unknown[]) => unknown
  );
  let calls = 0;
  methods.forEach(([proto, name], index) => {
    const original = originals[index]!;
    Object.defineProperty(proto, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        calls++;
        return original.apply(this, args);
      },
    });
  });
  try {
    body();
  } finally {
    methods.forEach(([proto, name], index) => {
      Object.defineProperty(proto, name, {
        configurable: true,
        writable: true,
        value: originals[index],
      });
    });
  }
  return calls;
}

Deno.test("hot path: a bound child's inc stays cheap", () => {
  // Work is counted, not timed: a bound child's inc() must not look itself up again (render
  // the label pairs, check them for escapes, find the child in the map) on every call.
  const counter = new MetricsRegistry().counter("e_total", "E", ["table", "op"]);
  const child = counter.labels({ table: "public.orders", op: "c" });
  const bound = lookupCalls(() => {
    for (let index = 0; index < 1_000_000; index++) child.inc();
  });
  assert.equal(child.get(), 1_000_000);
  assert.equal(bound, 0, `1e6 increments of a bound child made ${bound} lookup calls`);
  // The count sees a lookup: the same increments through the labels make one or more each.
  const labels = { table: "public.orders", op: "c" };
  const looked = lookupCalls(() => {
    for (let index = 0; index < 1_000; index++) counter.inc(labels);
  });
  assert.equal(child.get(), 1_001_000);
  assert.ok(looked >= 1_000, `1,000 labelled increments made ${looked} lookup calls`);
});
