/**
 * Benchmark helper: V8's sampling heap profiler inside the process (`node:inspector`), and a
 * summary of what it saw by allocating function. With `survivorsOnly`, objects that a scavenge
 * collected are left out: what remains is what lived long enough to be copied and promoted,
 * which is what costs the garbage collector time and the old generation its growth.
 *
 * `bench pipeline` runs it when `SPILLWAY_BENCH_HEAP_PROFILE=all` or `=survivors` is set, and
 * prints the summary on stderr.
 *
 * @module
 */

import { Session } from "node:inspector";

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/** Starts sampling every `intervalBytes`; `stop()` resolves to the top allocating functions. */
export function heapProfiler(
  survivorsOnly: boolean,
  intervalBytes = 16 * 1024,
): { stop(top?: number): Promise<string> } {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params ?? {}, (error, result) => error ? reject(error) : resolve(result))
    );
  const started = post("HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: !survivorsOnly,
  });
  return {
    async stop(top = 25) {
      await started;
      const { profile } = await post("HeapProfiler.stopSampling") as {
        profile: { head: SamplingNode };
      };
      session.disconnect();
      const totals = new Map<string, number>();
      let all = 0;
      const walk = (node: SamplingNode) => {
        const frame = node.callFrame;
        const file = frame.url.replace(/^file:\/\/.*\/work\/[^/]+\//, "") || "(native)";
        const name = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
        totals.set(name, (totals.get(name) ?? 0) + node.selfSize);
        all += node.selfSize;
        for (const child of node.children) walk(child);
      };
      walk(profile.head);
      const lines = [
        `heap profile (${survivorsOnly ? "survivors of scavenges" : "all allocations"}): ${
          (all / 1048576).toFixed(0)
        } MB sampled`,
      ];
      for (const [name, bytes] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        const pct = (100 * bytes / all).toFixed(1).padStart(5);
        lines.push(`${(bytes / 1048576).toFixed(1).padStart(8)} MB ${pct}%  ${name}`);
      }
      return lines.join("\n");
    },
  };
}
