/**
 * A pipeline's source settings as the options of one connection.
 *
 * @module
 */

import {
  type ConnectOptions,
  parseConnectionUrl,
  readRootCertificates,
} from "../postgres/connection_string.ts";
import type { PipelineConfig } from "./types.ts";

/**
 * The connection options of `config.source`: its URL, with `sslmode` and `sslrootcert`
 * (read from its file) from the pipeline where set. `applicationName` applies unless the
 * URL names one.
 */
export function connectOptions(
  config: PipelineConfig,
  applicationName = `spillway-${config.name}`,
): ConnectOptions {
  const options = parseConnectionUrl(config.source.url, Deno.env.toObject());
  if (config.source.sslmode !== null) options.sslmode = config.source.sslmode;
  if (config.source.sslrootcert !== null) {
    options.sslrootcert = readRootCertificates(
      config.source.sslrootcert,
      `source.sslrootcert in ${config.file}`,
    );
  }
  options.applicationName ??= applicationName;
  // The message, and the CopyData and XLogData headers around it.
  options.maxMessageBytes = config.source.maxMessageBytes + 64;
  return options;
}
