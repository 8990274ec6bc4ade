/**
 * What a failure means: each kind of error the client meets, judged retriable or not, with
 * the fix named (the real broker's refusals are in tests/kafka_security_test.ts).
 */

import assert from "node:assert/strict";
import { BrokerConnectionError, WrongListenerError } from "./connection.ts";
import { classifyError, describeError, errorTypes } from "./errors.ts";
import { KafkaProtocolError } from "./wire.ts";

const brokers = ["k1:9092"];

Deno.test("errors: broker codes, sockets, certificates and listeners are judged, with the fix named", () => {
  const judged = (error: unknown) => classifyError(error, "sending records", brokers);

  const fenced = judged(new KafkaProtocolError(90, "producing to t[0]"));
  assert.deepEqual([fenced.retriable, fenced.fenced], [false, true]);
  assert.match(fenced.message, /another Spillway runner with the same transactional id/);

  const sasl = judged(new KafkaProtocolError(58, "authenticating", "Invalid username"));
  assert.equal(sasl.retriable, false);
  assert.match(sasl.message, /check sasl\.username, sasl\.password and sasl\.mechanism/);

  const certificate = judged(
    new BrokerConnectionError("connecting failed", {
      cause: Object.assign(new Error("unable to verify"), {
        code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      }),
    }),
  );
  assert.equal(certificate.retriable, false);
  assert.match(certificate.message, /set tls\.ca/);

  const listener = judged(new WrongListenerError("sent an answer of 1213486160 bytes"));
  assert.equal(listener.retriable, false);
  assert.match(listener.message, /check tls and sasl against the broker's listener/);

  // Several partitions refused at once: the fatal one decides, both messages are kept.
  const both = judged(
    new AggregateError([
      new KafkaProtocolError(6, "producing to t[0]"),
      new KafkaProtocolError(10, "producing to t[1]", "too big"),
    ], "two refused"),
  );
  assert.equal(both.retriable, false);
  assert.match(both.message, /MESSAGE_TOO_LARGE/);
  assert.match(both.message, /raise the topic's max\.message\.bytes/);
  assert.match(both.message, /NOT_LEADER_OR_FOLLOWER producing to t\[0\]/);

  const settings = judged(new KafkaProtocolError(37, "creating topic t", "partitions 0"));
  assert.equal(settings.retriable, false);
  assert.match(settings.message, /set partitions and replication_factor/);

  const missing = judged(new KafkaProtocolError(3, "reading the metadata of t"));
  assert.equal(missing.retriable, true);
  assert.match(missing.message, /create it or set create_topics: true/);

  const away = judged(new BrokerConnectionError("the connection to Kafka at k1:9092 closed"));
  assert.equal(away.retriable, true);
  assert.match(away.message, /^Kafka at k1:9092 failed while sending records: the connection/);
});

Deno.test("errors: types and messages are read through causes and gathered errors, each once", () => {
  const inner = new KafkaProtocolError(51, "ending the transaction");
  const outer = new Error("wrapped", { cause: new AggregateError([inner, inner], "several") });
  assert.deepEqual(errorTypes(outer), [
    "Error",
    "AggregateError",
    "CONCURRENT_TRANSACTIONS",
    "KafkaProtocolError",
  ]);
  assert.equal(describeError(outer), "CONCURRENT_TRANSACTIONS ending the transaction");
});
