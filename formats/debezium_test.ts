import assert from "node:assert/strict";
import { constantText, javaHashMapOrder } from "./debezium.ts";

Deno.test("javaHashMapOrder: the order java.util.HashMap iterates keys put in this order (recorded with jshell, Java 17), through a resize", () => {
  const keys = [
    "public.orders",
    "public.customers",
    "public.items",
    "inventory.products",
    "public.a",
    "public.b",
    "shop.z",
    "public.order_lines",
    ...Array.from({ length: 10 }, (_, i) => `s.t${i + 1}`),
  ];
  assert.deepEqual(
    javaHashMapOrder(keys).join(","),
    "public.items,public.orders,public.customers,public.a,public.b,shop.z,s.t6,s.t5,s.t8," +
      "public.order_lines,s.t7,s.t2,s.t1,inventory.products,s.t4,s.t3,s.t10,s.t9",
  );
});

Deno.test("constantText: constant defaults as Debezium puts them in schemas; expressions give none", () => {
  assert.equal(constantText("42"), "42");
  assert.equal(constantText("'-1'::integer"), "-1");
  assert.equal(constantText("(-1.5)::numeric"), "-1.5");
  assert.equal(constantText("'none'::text"), "none");
  assert.equal(constantText("'it''s'::character varying"), "it's");
  assert.equal(constantText("'{}'::integer[]"), "{}");
  assert.equal(constantText("true"), "true");
  assert.equal(constantText(`B'10100101'::"bit"`), "10100101");
  assert.equal(constantText("B'1101'::bit varying"), "1101");
  assert.equal(constantText("now()"), null);
  assert.equal(constantText("nextval('orders_id_seq'::regclass)"), null);
  assert.equal(constantText("CURRENT_TIMESTAMP"), null);
});
