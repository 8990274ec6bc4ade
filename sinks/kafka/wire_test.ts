/**
 * The protocol's building blocks and the requests' answers, on bytes written by hand after
 * Kafka's message definitions (the real broker reads and answers them in tests/kafka_*_test.ts).
 */

import assert from "node:assert/strict";
import { API_VERSIONS, METADATA, readProduceResponse } from "./apis.ts";
import {
  errorName,
  KafkaProtocolError,
  MalformedResponseError,
  RequestWriter,
  ResponseReader,
} from "./wire.ts";

Deno.test("wire: compact and classic forms as the protocol writes them", () => {
  const writer = new RequestWriter(3);
  writer.compactString("ab").compactString(null).string("c").string(null);
  writer.compactBytes(new Uint8Array([9])).uvarint(300).int16(-2).int32(1).int64(-1n).bool(true);
  writer.compactArray([1, 2], (n) => writer.int8(n)).compactArray(null, () => {}).tags();
  assert.deepEqual([...writer.bytes()], [
    ...[0, 0, 0], // the header's room
    3,
    97,
    98,
    0, // "ab", null
    0,
    1,
    99,
    0xff,
    0xff, // "c", null
    2,
    9,
    0xac,
    0x02, // bytes [9], varint 300
    0xff,
    0xfe,
    0,
    0,
    0,
    1,
    ...Array(8).fill(0xff),
    1,
    3,
    1,
    2,
    0,
    0, // [1, 2], null, no tags
  ]);
  const reader = new ResponseReader(writer.bytes().subarray(3));
  assert.equal(reader.compactString(), "ab");
  assert.equal(reader.compactString(), null);
  assert.equal(reader.string(), "c");
  assert.equal(reader.string(), null);
  assert.deepEqual([...reader.compactBytes()!], [9]);
  assert.equal(reader.uvarint(), 300);
  assert.deepEqual([reader.int16(), reader.int32(), reader.int64(), reader.bool()], [
    -2,
    1,
    -1n,
    true,
  ]);
  assert.deepEqual(reader.compactArray(() => reader.int8()), [1, 2]);
  assert.deepEqual(reader.compactArray(() => reader.int8()), []);
  reader.tags();
  assert.equal(reader.remaining, 0);
});

Deno.test("wire: tagged fields are skipped whatever they hold; a short or lying answer is malformed", () => {
  // Two tagged fields (tag 0 of 3 bytes, tag 5 of 1 byte), then an int16.
  const reader = new ResponseReader(new Uint8Array([2, 0, 3, 1, 2, 3, 5, 1, 9, 0, 7]));
  reader.tags();
  assert.equal(reader.int16(), 7);
  assert.throws(
    () => new ResponseReader(new Uint8Array([0, 0, 1])).int32(),
    MalformedResponseError,
  );
  // An array of 100 items announced in 2 bytes.
  assert.throws(
    () => new ResponseReader(new Uint8Array([101, 0])).compactArray(() => 0),
    /array of 100 items in 1 bytes/,
  );
  assert.throws(
    () => new ResponseReader(new Uint8Array([2, 0xff])).compactString(),
    /not UTF-8/,
  );
});

Deno.test("wire: broker error codes are named, and Java's passing ones are marked so", () => {
  assert.equal(errorName(16), "NOT_COORDINATOR");
  assert.equal(errorName(999), "KAFKA_ERROR_999");
  const moved = new KafkaProtocolError(6, "producing to t[0]", "not the leader");
  assert.equal(moved.type, "NOT_LEADER_OR_FOLLOWER");
  assert.equal(moved.passing, true);
  assert.equal(moved.message, "NOT_LEADER_OR_FOLLOWER producing to t[0]: not the leader");
  assert.equal(new KafkaProtocolError(29, "producing").passing, false);
  assert.equal(new KafkaProtocolError(90, "producing").type, "PRODUCER_FENCED");
});

Deno.test("apis: the Metadata answer (v9) gives brokers, and each topic's partitions by index", () => {
  const w = new RequestWriter();
  w.int32(0); // throttle
  w.compactArray([[1, "b1", 9092], [2, "b2", 9093]] as const, ([id, host, port]) => {
    w.int32(id).compactString(host).int32(port).compactString(null).tags();
  });
  w.compactString("cluster").int32(1);
  w.compactArray(["t"], (name) => {
    w.int16(0).compactString(name).bool(false);
    // Partitions listed out of order: 1 (leader 2), 0 (leader -1, being elected).
    w.compactArray([[1, 2], [0, -1]] as const, ([index, leader]) => {
      w.int16(leader < 0 ? 5 : 0).int32(index).int32(leader).int32(0);
      w.compactArray([1, 2], (n) => w.int32(n)).compactArray([1], (n) => w.int32(n));
      w.compactArray([], () => {}).tags();
    });
    w.int32(0).tags();
  });
  w.int32(0).tags();
  const answer = METADATA.read(new ResponseReader(w.bytes()));
  assert.deepEqual(answer.brokers.get(2), { nodeId: 2, host: "b2", port: 9093 });
  assert.equal(answer.controllerId, 1);
  assert.deepEqual(answer.topics.get("t")?.partitions, [
    { errorCode: 5, leader: -1 },
    { errorCode: 0, leader: 2 },
  ]);
});

Deno.test("apis: ApiVersions reads the ranges, and an error answer without them", () => {
  const w = new RequestWriter();
  w.int16(0).compactArray([[0, 3, 11], [3, 0, 12]], ([key, min, max]) => {
    w.int16(key!).int16(min!).int16(max!).tags();
  });
  w.int32(0).tags();
  const { errorCode, apis } = API_VERSIONS.read(new ResponseReader(w.bytes()));
  assert.equal(errorCode, 0);
  assert.deepEqual(apis.get(0), { min: 3, max: 11 });
  // A broker that does not know version 3 answers in version 0: the error code, then ranges.
  const refused = API_VERSIONS.read(new ResponseReader(new Uint8Array([0, 35, 0, 0, 0, 0])));
  assert.equal(refused.errorCode, 35);
});

Deno.test("apis: a Produce answer gives the partitions refused, with the record errors' messages", () => {
  const w = new RequestWriter();
  w.compactArray(["t"], (topic) => {
    w.compactString(topic);
    w.compactArray([[0, 0], [1, 87]] as const, ([partition, code]) => {
      w.int32(partition).int16(code).int64(-1n).int64(-1n).int64(0n);
      w.compactArray(code === 0 ? [] : [0], (index) => {
        w.int32(index).compactString("null key on a compacted topic").tags();
      });
      w.compactString(code === 0 ? null : "invalid record").tags();
    });
    w.tags();
  });
  w.int32(0).tags();
  assert.deepEqual(readProduceResponse(new ResponseReader(w.bytes())), [{
    topic: "t",
    partition: 1,
    errorCode: 87,
    errorMessage: "invalid record; null key on a compacted topic",
  }]);
});

Deno.test("apis: a Metadata answer whose partition indexes are not 0 to count - 1 is malformed", () => {
  for (const indexes of [[0, 2], [1, 1], [0, -1]]) {
    const w = new RequestWriter();
    w.int32(0).compactArray([], () => {}).compactString(null).int32(1);
    w.compactArray(["t"], (name) => {
      w.int16(0).compactString(name).bool(false);
      w.compactArray(indexes, (index) => {
        w.int16(0).int32(index).int32(1).int32(0);
        w.compactArray([], () => {}).compactArray([], () => {}).compactArray([], () => {}).tags();
      });
      w.int32(0).tags();
    });
    w.int32(0).tags();
    assert.throws(
      () => METADATA.read(new ResponseReader(w.bytes())),
      /metadata of topic t lists 2 partitions that are not 0 to 1/,
      `indexes ${indexes}`,
    );
  }
});
