-- The tables of the worked example (examples/transforms.yaml): the shop schema that
-- `deno task demo` creates in its embedded PostgreSQL. For a database of your own:
--
--   psql "$ORDERS_URL" -f examples/transforms/schema.sql
--
-- tests/examples_transforms_test.ts checks that the demo still creates this orders table.
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  amount numeric(12,2) NOT NULL,
  status text NOT NULL DEFAULT 'new',
  note text,
  created_at timestamptz NOT NULL DEFAULT now()
);
