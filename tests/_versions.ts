/**
 * Tests that run on every PostgreSQL version under test, one version after the other: a file
 * adds its tests with {@linkcode VersionTests.test} and registers them at its end with
 * {@linkcode VersionTests.register}, usually for `testVersions("full")`. The tests of a version
 * share its server (from `sharedServers` in `_replication.ts`), which stops before the next
 * version's tests start.
 *
 * @module
 */

import type { PgVersion } from "../testing/embedded_postgres.ts";
import type { SharedServers } from "./_replication.ts";

/** The oldest version a test can run on, and why it cannot on older ones. */
export interface Since {
  version: PgVersion;
  reason: string;
}

/** The tests of one file, to run on each version under test. */
export interface VersionTests {
  /**
   * Adds a test, named `${name} (PostgreSQL N)` for each version; with `since`, it is skipped
   * on older versions, and its name there says why.
   */
  test(name: string, fn: (version: PgVersion) => Promise<void>, since?: Since): void;
  /**
   * Registers every test added for each of `versions` in turn, each version's tests followed by
   * a teardown that stops its server, and last a teardown that stops any other server the
   * tests started. Call it once, at the end of the file.
   */
  register(versions: readonly PgVersion[]): void;
}

/** Tests run on each version's server of `servers`. */
export function versionTests(servers: SharedServers): VersionTests {
  const tests: { name: string; fn: (version: PgVersion) => Promise<void>; since?: Since }[] = [];
  return {
    test(name, fn, since) {
      tests.push({ name, fn, since });
    },
    register(versions) {
      for (const version of versions) {
        for (const { name, since, fn } of tests) {
          const skipped = since !== undefined && version < since.version ? since.reason : null;
          Deno.test({
            name: `${name} (PostgreSQL ${version}${
              skipped === null ? "" : `; skipped: ${skipped}`
            })`,
            ignore: skipped !== null,
            fn: () => fn(version),
          });
        }
        Deno.test(`teardown: stop the shared PostgreSQL ${version} server`, async () => {
          await servers.stop(version);
        });
      }
      Deno.test("teardown: stop any other shared server", async () => {
        await servers.stopAll();
      });
    },
  };
}
