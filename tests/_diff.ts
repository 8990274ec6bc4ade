/**
 * Field-by-field differences between two JSON values, for the tests that hold Spillway's output
 * against a peer's (Debezium's records, Apache Avro's Java reader).
 *
 * @module
 */

/** `value` as JSON, bigints shown as `123n`. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v) ?? "undefined";
}

/**
 * Every difference between two parsed JSON values, as `path: a ≠ b` lines; objects with the
 * same members in another order differ too (JsonConverter writes fields in schema order).
 */
export function differences(a: unknown, b: unknown, path = ""): string[] {
  if (show(a) === show(b)) return [];
  if (
    a !== null && b !== null && typeof a === "object" && typeof b === "object" &&
    Array.isArray(a) === Array.isArray(b)
  ) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const out = keys.flatMap((key) =>
      differences(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        `${path}.${key}`,
      )
    );
    if (out.length === 0) return [`${path}: key order ${Object.keys(a)} ≠ ${Object.keys(b)}`];
    return out;
  }
  return [`${path}: ${show(a)} ≠ ${show(b)}`];
}
