/**
 * The sink's request bodies against another implementation's: `@platformatic/kafka`'s encoders
 * of the same versions (the client the sink used before, whose requests real brokers took),
 * byte for byte. The real broker reads the sink's own in tests/kafka_*_test.ts.
 */

import assert from "node:assert/strict";
import {
  addOffsetsToTxnV3,
  addPartitionsToTxnV3,
  apiVersionsV3,
  createTopicsV5,
  endTxnV3,
  findCoordinatorV3,
  initProducerIdV3,
  metadataV9,
  offsetFetchV7,
  saslAuthenticateV2,
  saslHandshakeV1,
  txnOffsetCommitV3,
} from "npm:@platformatic/kafka@2.12.1";
import {
  ADD_OFFSETS_TO_TXN,
  ADD_PARTITIONS_TO_TXN,
  type Api,
  API_VERSIONS,
  CREATE_TOPICS,
  END_TXN,
  FIND_COORDINATOR,
  INIT_PRODUCER_ID,
  METADATA,
  OFFSET_FETCH,
  SASL_AUTHENTICATE,
  SASL_HANDSHAKE,
  TXN_OFFSET_COMMIT,
} from "./apis.ts";
import { RequestWriter } from "./wire.ts";

/** The body `api` writes for `args`. */
function ours<Args>(api: Api<Args, unknown>, args: Args): number[] {
  const writer = new RequestWriter();
  api.write(writer, args);
  return [...writer.bytes()];
}

/** The bytes of one of the library's request writers. */
function theirs(writer: { buffer: Uint8Array }): number[] {
  return [...new Uint8Array(writer.buffer)];
}

const transaction = { transactionalId: "spillway-p", producerId: 4242n, producerEpoch: 3 };

Deno.test("apis: each request's body equals @platformatic/kafka's for the same version", () => {
  // deno-lint-ignore no-explicit-any
  const lib = (api: { createRequest: (...args: any[]) => unknown }, ...args: unknown[]) =>
    theirs(api.createRequest(...args) as { buffer: Uint8Array });
  assert.deepEqual(ours(API_VERSIONS, "0.1.0"), lib(apiVersionsV3, "spillway", "0.1.0"));
  assert.deepEqual(
    ours(METADATA, { topics: ["a", "bé"], allowAutoCreation: true }),
    lib(metadataV9, ["a", "bé"], true, false, false),
  );
  assert.deepEqual(
    ours(METADATA, { topics: null, allowAutoCreation: false }),
    lib(metadataV9, null, false, false, false),
  );
  assert.deepEqual(
    ours(FIND_COORDINATOR, { key: "spillway-p", keyType: 1 }),
    lib(findCoordinatorV3, 1, ["spillway-p"]),
  );
  assert.deepEqual(
    ours(INIT_PRODUCER_ID, {
      transactionalId: "spillway-p",
      transactionTimeoutMs: 600_000,
      producerId: -1n,
      producerEpoch: -1,
    }),
    lib(initProducerIdV3, "spillway-p", 600_000, -1n, -1),
  );
  assert.deepEqual(
    ours(INIT_PRODUCER_ID, {
      transactionalId: null,
      transactionTimeoutMs: 1,
      producerId: -1n,
      producerEpoch: -1,
    }),
    lib(initProducerIdV3, null, 1, -1n, -1),
  );
  assert.deepEqual(
    ours(ADD_PARTITIONS_TO_TXN, { ...transaction, topics: new Map([["t1", [0, 2]], ["t2", [1]]]) }),
    lib(addPartitionsToTxnV3, [{
      ...transaction,
      topics: [{ name: "t1", partitions: [0, 2] }, { name: "t2", partitions: [1] }],
    }]),
  );
  assert.deepEqual(
    ours(ADD_OFFSETS_TO_TXN, { ...transaction, group: "spillway-p-checkpoint" }),
    lib(addOffsetsToTxnV3, "spillway-p", 4242n, 3, "spillway-p-checkpoint"),
  );
  assert.deepEqual(
    ours(TXN_OFFSET_COMMIT, {
      ...transaction,
      group: "g",
      topic: "spillway.checkpoints",
      partition: 0,
      offset: 0x16b3_7e88n,
    }),
    lib(txnOffsetCommitV3, "spillway-p", "g", 4242n, 3, -1, "", null, [{
      name: "spillway.checkpoints",
      partitions: [{
        partitionIndex: 0,
        committedOffset: 0x16b3_7e88n,
        committedLeaderEpoch: -1,
        committedMetadata: null,
      }],
    }]),
  );
  for (const commit of [true, false]) {
    assert.deepEqual(
      ours(END_TXN, { ...transaction, commit }),
      lib(endTxnV3, "spillway-p", 4242n, 3, commit),
    );
  }
  assert.deepEqual(
    ours(OFFSET_FETCH, { group: "g", topic: "spillway.checkpoints", partition: 0 }),
    lib(offsetFetchV7, [{
      groupId: "g",
      topics: [{ name: "spillway.checkpoints", partitionIndexes: [0] }],
    }], true),
  );
  assert.deepEqual(
    ours(CREATE_TOPICS, {
      topics: ["x", "y"],
      partitions: 3,
      replicationFactor: -1,
      config: { "cleanup.policy": "compact" },
      timeoutMs: 25_000,
    }),
    lib(
      createTopicsV5,
      ["x", "y"].map((name) => ({
        name,
        numPartitions: 3,
        replicationFactor: -1,
        assignments: [],
        configs: [{ name: "cleanup.policy", value: "compact" }],
      })),
      25_000,
      false,
    ),
  );
  assert.deepEqual(ours(SASL_HANDSHAKE, "SCRAM-SHA-512"), lib(saslHandshakeV1, "SCRAM-SHA-512"));
  const auth = new TextEncoder().encode("n,,n=user,r=abc");
  assert.deepEqual(ours(SASL_AUTHENTICATE, auth), lib(saslAuthenticateV2, auth));
});
