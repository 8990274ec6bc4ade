/**
 * Frontend (client → server) message encoders. Pure: values in, bytes out.
 *
 * @module
 */

import { BufferWriter } from "./_writer.ts";
import { FrontendCode, StartupCode } from "./codes.ts";

/** StartupMessage: `Int32 len, Int32 196608, (String key, String value)*, Byte1 0`. */
export function encodeStartup(parameters: Record<string, string>): Uint8Array {
  const writer = new BufferWriter();
  writer.int32(StartupCode.ProtocolVersion3);
  for (const [key, value] of Object.entries(parameters)) writer.cstring(key).cstring(value);
  writer.uint8(0);
  return writer.flush(null);
}

/** SSLRequest: `Int32 8, Int32 80877103`. */
export function encodeSslRequest(): Uint8Array {
  return new BufferWriter(16).int32(StartupCode.SSLRequest).flush(null);
}

/** PasswordMessage: `String password` (cleartext or md5 digest). */
export function encodePassword(password: string): Uint8Array {
  return new BufferWriter().cstring(password).flush(FrontendCode.Password);
}

/** SASLInitialResponse: `String mechanism, Int32 len, Byte[len]`. */
export function encodeSaslInitialResponse(mechanism: string, data: Uint8Array): Uint8Array {
  return new BufferWriter().cstring(mechanism).int32(data.byteLength).bytes(data).flush(
    FrontendCode.Password,
  );
}

/** SASLResponse: `Byte[n]`. */
export function encodeSaslResponse(data: Uint8Array): Uint8Array {
  return new BufferWriter().bytes(data).flush(FrontendCode.Password);
}

/** Query: `String sql`. */
export function encodeQuery(sql: string): Uint8Array {
  return new BufferWriter(sql.length + 16).cstring(sql).flush(FrontendCode.Query);
}

/** CopyData: `Byte[n]`. */
export function encodeCopyData(data: Uint8Array): Uint8Array {
  return new BufferWriter(data.byteLength + 8).bytes(data).flush(FrontendCode.CopyData);
}

/** CopyDone: no body. */
export function encodeCopyDone(): Uint8Array {
  return new BufferWriter(8).flush(FrontendCode.CopyDone);
}

/** Terminate: no body. */
export function encodeTerminate(): Uint8Array {
  return new BufferWriter(8).flush(FrontendCode.Terminate);
}
