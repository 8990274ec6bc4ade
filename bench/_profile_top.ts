/**
 * Prints the functions with the most self time in a V8 `.cpuprofile` (as written by
 * `deno run --cpu-prof`), and the total per source file.
 *
 * Usage: `deno run -R bench/_profile_top.ts FILE.cpuprofile [N]` (N rows, default 20).
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function main(args: string[]): void {
  const [path, countText] = args;
  if (path === undefined) throw new Error("Cannot summarize a profile: name a .cpuprofile file");
  const profile = JSON.parse(Deno.readTextFileSync(path)) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totals = new Map<string, number>();
  const files = new Map<string, number>();
  let all = 0;
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)!.callFrame;
    const file = frame.url.replace(/^file:\/\/.*\/work\/main\//, "") || "(native)";
    const name = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    totals.set(name, (totals.get(name) ?? 0) + micros);
    files.set(file, (files.get(file) ?? 0) + micros);
    all += micros;
  }
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, Number(countText ?? 20));
  console.log(`${path}: ${(all / 1e6).toFixed(2)} s sampled`);
  for (const [name, micros] of top) {
    console.log(`${(micros / 1e3).toFixed(0).padStart(7)} ms ${pct(micros, all)}  ${name}`);
  }
  console.log("-- by file --");
  for (const [file, micros] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`${(micros / 1e3).toFixed(0).padStart(7)} ms ${pct(micros, all)}  ${file}`);
  }
}

function pct(part: number, whole: number): string {
  return `${(100 * part / whole).toFixed(1).padStart(5)}%`;
}

if (import.meta.main) main(Deno.args);
