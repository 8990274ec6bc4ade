/**
 * The table of common column types that the peer comparisons share (Debezium's records in
 * `debezium_conformance_test.ts`, Apache Avro's Java reader in `kafka_avro_java_test.ts`): its
 * columns after the key, and a row of values for them.
 *
 * @module
 */

/** The columns after `id`: 36 types, with NOT NULL, defaults and `enumType` for `e`. */
export function allTypesColumns(enumType: string): string {
  return `
    i2 smallint, i4 integer NOT NULL DEFAULT 7, i8 bigint,
    n102 numeric(10,2), n numeric, f4 real, f8 double precision, m money,
    b boolean, t text DEFAULT 'none', vc varchar(20), c char(5), by bytea,
    u uuid, j json, jb jsonb, x xml,
    d date, tm time, tm3 time(3), ts timestamp, ts3 timestamp(3), tstz timestamptz, ttz timetz,
    iv interval, ip inet, net cidr, mac macaddr,
    bit1 bit(1), bit8 bit(8), vb varbit,
    e ${enumType}, ai int[], at text[], r int4range, pt point`;
}

/** Values for {@linkcode allTypesColumns} (SQL), `text` as the `t` column's literal. */
export function allTypesValues(text: string): string {
  return `-32768, 2147483647, 9007199254740993,
    12345678.90, 3.14159, 1.5, -2.25e-10, -1234.56,
    true, ${text}, 'varchar', 'ab', '\\x00ff10',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '<x>1</x>',
    '2024-02-29', '13:45:00.123456', '13:45:00.5', '2024-02-29 13:45:00.123456',
    '2024-02-29 13:45:00.5', '2024-02-29 13:45:00.5+02', '13:45:00+05:30',
    '1 year 2 months 3 days 04:05:06.5', '192.168.0.1', '10.0.0.0/8', '08:00:2b:01:02:03',
    B'1', B'10100101', B'1101',
    'happy', '{1,NULL,3}', '{"a b",NULL,c}', '[1,5)', '(1.5,-2)'`;
}
