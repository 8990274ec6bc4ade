/**
 * `deno task bench <name>`: Spillway's benchmarks. Each one starts the servers it needs through
 * the test harness and prints a result table; see `bench/RESULTS.md` for recorded runs.
 *
 * @module
 */

const USAGE = `deno task bench <name> [options]

Benchmarks:
  decode   decode-only throughput of a 1,000,000-row transaction vs pg_recvlogical
  pipeline end-to-end throughput (null and file sinks) vs pg_recvlogical, commit-to-sink
           latency at 1,000 tx/s, and RSS on a 5,000,000-row transaction
  types    typed-value decoding of a 31-column table, text vs binary mode, vs pg_recvlogical
  huge     one huge row change (40 MB, 1 GB, 500 MB text values; 1 GB refused at a 64 MiB
           limit): commit-to-change time and peak RSS vs pg_recvlogical
  transforms
           pipeline throughput (null and file sinks) of a 1,000,000-row transaction with no
           transform, the identity transform and a light one, and the p99 latency the
           identity transform adds at 1,000 tx/s
  kafka    the Kafka sink (spillway run) vs Debezium into the same local broker, and
           pg_recvlogical: a 1,000,000-row transaction and 1,000-row transactions (schemas
           true/false, exactly-once), commit-to-consumer latency at 1,000 tx/s, peak RSS
  avro     the Kafka sink's Avro (with a schema registry) vs its JSON without and with the
           schema: rows/s and bytes per event of a 1,000,000-row transaction

Run "deno task bench <name> --help" for a benchmark's options.`;

/** Runs the named benchmark and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  switch (name) {
    case "decode": {
      const { decodeBench } = await import("./decode.ts");
      return await decodeBench(rest);
    }
    case "types": {
      const { typesBench } = await import("./types.ts");
      return await typesBench(rest);
    }
    case "pipeline": {
      const { pipelineBench } = await import("./pipeline.ts");
      return await pipelineBench(rest);
    }
    case "huge": {
      const { hugeRowsBench } = await import("./huge_rows.ts");
      return await hugeRowsBench(rest);
    }
    case "transforms": {
      const { transformsBench } = await import("./transforms.ts");
      return await transformsBench(rest);
    }
    case "kafka": {
      const { kafkaBench } = await import("./kafka.ts");
      return await kafkaBench(rest);
    }
    case "avro": {
      const { avroBench } = await import("./kafka.ts");
      return await avroBench(rest);
    }
    case "help":
    case "-h":
    case "--help":
      console.log(USAGE);
      return 0;
    case undefined:
      console.error(`Cannot run a benchmark: name one\n\n${USAGE}`);
      return 2;
    default:
      console.error(`Cannot run benchmark "${name}": it does not exist\n\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
