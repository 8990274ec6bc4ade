/**
 * Benchmark helper: where a process's memory goes, sampled from inside it (`Deno.memoryUsage()`
 * and `/proc/self/smaps`). Used by `bench pipeline` (`SPILLWAY_BENCH_MEMORY=1`) and, through
 * `_memory_main.ts`, by `bench kafka --memory`.
 *
 * @module
 */

/** What {@linkcode memorySampler} saw, in MB. */
export interface MemoryReport {
  /** The peak of each part of `Deno.memoryUsage()`. */
  memoryPeaksMb: Record<string, number>;
  /** The parts at the RSS peak. */
  atRssPeakMb: Record<string, number>;
  /** Seconds from the sampler's start to the RSS peak. */
  atRssPeakS: number;
  /** Resident memory by kind of mapping when sampling stopped (see {@linkcode residentMappings}). */
  mappingsAtEndMb: Record<string, number>;
}

/**
 * Samples `Deno.memoryUsage()` every 50 ms; `stop()` returns the peak of each part (MB), the
 * parts at the RSS peak, and the process's mappings by kind.
 */
export function memorySampler(): { stop(): MemoryReport } {
  const mb = (bytes: number) => Math.round(bytes / 1048576);
  const peaks = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  let atPeak = Deno.memoryUsage();
  const started = performance.now();
  let atPeakMs = 0;
  const timer = setInterval(() => {
    const now = Deno.memoryUsage();
    if (now.rss > peaks.rss) {
      atPeak = now;
      atPeakMs = performance.now() - started;
    }
    for (const key of Object.keys(peaks) as (keyof typeof peaks)[]) {
      peaks[key] = Math.max(peaks[key], now[key]);
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return {
        memoryPeaksMb: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, mb(v)])),
        atRssPeakMb: Object.fromEntries(Object.entries(atPeak).map(([k, v]) => [k, mb(v)])),
        atRssPeakS: Math.round(atPeakMs / 100) / 10,
        mappingsAtEndMb: residentMappings(),
      };
    },
  };
}

/** `SPILLWAY_BENCH_SNAP_S` in seconds (0 when unset); throws when it is not a number. */
export function snapshotSecondsFromEnv(): number {
  const raw = Deno.env.get("SPILLWAY_BENCH_SNAP_S") ?? "0";
  const seconds = Number(raw);
  if (!(seconds >= 0)) {
    throw new Error(`SPILLWAY_BENCH_SNAP_S is "${raw}": set a number of seconds, or unset it`);
  }
  return seconds;
}

/**
 * `SPILLWAY_BENCH_SNAP_S=<s>`: writes a V8 heap snapshot (what is live, after a full collection)
 * `<s>` seconds from now, at `pathFor(s)`; nothing when unset. The process pauses while it is
 * written, and the snapshot's own memory counts in its peaks.
 */
export async function heapSnapshotFromEnv(pathFor: (seconds: number) => string): Promise<void> {
  const seconds = snapshotSecondsFromEnv();
  if (seconds === 0) return;
  const v8 = await import("node:v8");
  Deno.unrefTimer(setTimeout(() => v8.writeHeapSnapshot(pathFor(seconds)), seconds * 1000));
}

/**
 * The process's resident memory by kind of mapping (/proc/self/smaps), in MB: the allocator's
 * heap, anonymous mappings by size class, thread stacks, files. Shows what is neither V8's heap
 * nor external ArrayBuffers. V8's heap pages are 256 KB read-write mappings inside its reserved
 * cage, counted apart: with the pages V8 keeps pooled after a full collection (not in
 * `heapTotal`), they are most of the process's resident memory.
 */
export function residentMappings(): Record<string, number> {
  const kinds: Record<string, number> = {};
  let kind = "";
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const [start, end] = line.split(" ")[0]!.split("-").map((hex) => parseInt(hex, 16));
      const sizeMb = (end! - start!) / 1048576;
      const name = header[1]!;
      kind = name.startsWith("/")
        ? "files"
        : name !== ""
        ? name
        : sizeMb >= 64
        ? "anon >= 64 MB"
        : sizeMb >= 1
        ? "anon 1-64 MB"
        : sizeMb === 0.25 && line.split(" ")[1] === "rw-p"
        ? "anon 256 KB (V8 heap pages)"
        : "anon < 1 MB";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) kinds[kind] = (kinds[kind] ?? 0) + Number(rss[1]) / 1024;
  }
  const rounded: Record<string, number> = {};
  for (const [name, mb] of Object.entries(kinds)) {
    if (Math.round(mb) > 0) rounded[name] = Math.round(mb);
  }
  return rounded;
}
