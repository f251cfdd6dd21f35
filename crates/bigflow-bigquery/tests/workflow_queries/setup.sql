-- The sample's tables: a small shop (customers, orders, order lines,
-- products), its web tracking (page views, events with JSON payloads) and
-- an accounting feed (transactions, exchange rates, customer updates).

CREATE TABLE customers (
  customer_id INT64,
  name STRING,
  email STRING,
  country STRING,
  signup_date DATE,
  referrer_id INT64
);
INSERT INTO customers (customer_id, name, email, country, signup_date, referrer_id) VALUES
  (1, 'Alice', 'alice@example.com', 'PL', DATE '2024-01-05', NULL),
  (2, 'Bob', 'bob@example.org', 'DE', DATE '2024-01-20', 1),
  (3, 'Carol', 'carol@shop.example.com', 'PL', DATE '2024-02-11', 1),
  (4, 'Dave', NULL, 'US', DATE '2024-02-29', 2),
  (5, 'Eve', 'eve@example.com', NULL, DATE '2024-03-01', NULL),
  (6, 'Frank', 'frank@example.net', 'DE', DATE '2024-03-15', 3);

CREATE TABLE orders (
  order_id INT64,
  customer_id INT64,
  order_date DATE,
  status STRING,
  amount NUMERIC,
  discount NUMERIC,
  created_at TIMESTAMP
);
INSERT INTO orders (order_id, customer_id, order_date, status, amount, discount, created_at) VALUES
  (101, 1, DATE '2024-03-01', 'completed', NUMERIC '120.50', NUMERIC '10', TIMESTAMP '2024-03-01 09:15:00+00'),
  (102, 2, DATE '2024-03-01', 'completed', NUMERIC '80.00', NULL, TIMESTAMP '2024-03-01 23:30:00+00'),
  (103, 1, DATE '2024-03-02', 'cancelled', NUMERIC '45.00', NULL, TIMESTAMP '2024-03-02 07:05:00+00'),
  (104, 3, DATE '2024-03-03', 'completed', NUMERIC '200.00', NUMERIC '25', TIMESTAMP '2024-03-03 12:00:00+00'),
  (105, 7, DATE '2024-03-03', 'completed', NUMERIC '15.25', NULL, TIMESTAMP '2024-03-03 18:45:00+00'),
  (106, 2, DATE '2024-03-05', 'returned', NUMERIC '60.00', NUMERIC '5', TIMESTAMP '2024-03-05 22:10:00+00'),
  (107, 4, DATE '2024-03-05', 'completed', NUMERIC '99.99', NULL, TIMESTAMP '2024-03-05 08:00:00+00'),
  (108, 1, DATE '2024-03-08', 'completed', NUMERIC '30.00', NULL, TIMESTAMP '2024-03-08 15:20:00+00'),
  (109, 3, DATE '2024-03-10', 'pending', NUMERIC '150.00', NULL, TIMESTAMP '2024-03-10 10:00:00+00'),
  (110, 2, DATE '2024-03-10', 'completed', NUMERIC '75.50', NUMERIC '7.50', TIMESTAMP '2024-03-11 01:30:00+00');

CREATE TABLE products (
  sku STRING,
  name STRING,
  category STRING,
  price NUMERIC,
  tags ARRAY<STRING>
);
INSERT INTO products (sku, name, category, price, tags) VALUES
  ('P1', 'Widget', 'tools', NUMERIC '19.99', ['new', 'sale']),
  ('P2', 'Gadget', 'tools', NUMERIC '5.50', ARRAY<STRING>[]),
  ('P3', 'Gizmo', 'toys', NUMERIC '12.00', ['sale']),
  ('P4', 'Doohickey', 'toys', NUMERIC '7.25', ['clearance']);

CREATE TABLE order_items (order_id INT64, sku STRING, qty INT64);
INSERT INTO order_items (order_id, sku, qty) VALUES
  (101, 'P1', 5), (101, 'P3', 2), (102, 'P2', 4), (104, 'P1', 10), (104, 'P4', 1),
  (107, 'P3', 3), (108, 'P2', 2), (110, 'P4', 4), (110, 'P1', 1);

CREATE TABLE page_views (user_id STRING, ts TIMESTAMP, url STRING);
INSERT INTO page_views (user_id, ts, url) VALUES
  ('u1', TIMESTAMP '2024-03-05 10:00:00+00', 'https://shop.example.com/home?utm_source=google&utm_medium=cpc'),
  ('u1', TIMESTAMP '2024-03-05 10:05:00+00', 'https://shop.example.com/product/123'),
  ('u1', TIMESTAMP '2024-03-05 10:20:00+00', 'https://shop.example.com/cart'),
  ('u1', TIMESTAMP '2024-03-05 11:30:00+00', 'https://shop.example.com/product/456?utm_source=newsletter'),
  ('u1', TIMESTAMP '2024-03-05 11:40:00+00', 'https://shop.example.com/checkout'),
  ('u2', TIMESTAMP '2024-03-05 09:00:00+00', 'https://shop.example.com/home'),
  ('u2', TIMESTAMP '2024-03-05 09:10:00+00', 'https://shop.example.com/product/123?utm_source=facebook&utm_campaign=spring'),
  ('u2', TIMESTAMP '2024-03-06 09:00:00+00', 'https://shop.example.com/home'),
  ('u3', TIMESTAMP '2024-03-06 14:00:00+00', 'https://blog.example.com/post/7'),
  ('u3', TIMESTAMP '2024-03-06 14:29:59+00', 'https://shop.example.com/product/789');

CREATE TABLE events (
  event_id INT64,
  user_id STRING,
  event_ts TIMESTAMP,
  event_name STRING,
  payload STRING,
  dt DATE
)
PARTITION BY dt;
INSERT INTO events (event_id, user_id, event_ts, event_name, payload, dt) VALUES
  (1, 'u1', TIMESTAMP '2024-03-05 10:01:00+00', 'view', '{"item":{"id":"123","price":19.99},"tags":["new","sale"]}', DATE '2024-03-05'),
  (2, 'u1', TIMESTAMP '2024-03-05 10:06:00+00', 'add_to_cart', '{"item":{"id":"123","price":19.99},"qty":2}', DATE '2024-03-05'),
  (3, 'u2', TIMESTAMP '2024-03-05 09:11:00+00', 'view', '{"item":{"id":"456","price":5.5},"tags":[]}', DATE '2024-03-05'),
  (4, 'u1', TIMESTAMP '2024-03-05 11:41:00+00', 'purchase', '{"order_id":108,"total":"30.00","items":[{"id":"123","qty":2}]}', DATE '2024-03-05'),
  (5, 'u2', TIMESTAMP '2024-03-06 09:01:00+00', 'view', '{"item":{"id":"789"}}', DATE '2024-03-06'),
  (6, 'u3', TIMESTAMP '2024-03-06 14:30:00+00', 'add_to_cart', '{"item":{"id":"789","price":12},"qty":1}', DATE '2024-03-06'),
  (7, 'u3', TIMESTAMP '2024-03-06 14:31:00+00', 'add_to_cart', '{"item":{"id":"789","price":12},"qty":1}', DATE '2024-03-06'),
  (8, 'u2', TIMESTAMP '2024-03-07 08:00:00+00', 'purchase', '{"order_id":110,"total":"75.50"}', DATE '2024-03-07');

CREATE TABLE transactions (
  txn_id STRING,
  account_id STRING,
  txn_ts TIMESTAMP,
  amount FLOAT64,
  currency STRING
);
INSERT INTO transactions (txn_id, account_id, txn_ts, amount, currency) VALUES
  ('t1', 'A', TIMESTAMP '2024-03-01 08:00:00+00', 100.0, 'EUR'),
  ('t2', 'A', TIMESTAMP '2024-03-02 09:00:00+00', -20.0, 'EUR'),
  ('t3', 'A', TIMESTAMP '2024-03-04 10:00:00+00', 50.0, 'EUR'),
  ('t4', 'A', TIMESTAMP '2024-03-04 18:00:00+00', -30.0, 'EUR'),
  ('t5', 'B', TIMESTAMP '2024-03-01 12:00:00+00', 200.0, 'USD'),
  ('t6', 'B', TIMESTAMP '2024-03-03 12:00:00+00', -50.0, 'USD'),
  ('t7', 'B', TIMESTAMP '2024-03-06 12:00:00+00', 25.0, 'USD'),
  ('t8', 'C', TIMESTAMP '2024-03-02 07:30:00+00', 10.0, 'EUR');

CREATE TABLE exchange_rates (currency STRING, valid_from DATE, valid_to DATE, rate NUMERIC);
INSERT INTO exchange_rates (currency, valid_from, valid_to, rate) VALUES
  ('USD', DATE '2024-01-01', DATE '2024-03-02', NUMERIC '0.92'),
  ('USD', DATE '2024-03-03', DATE '2024-12-31', NUMERIC '0.91'),
  ('EUR', DATE '2024-01-01', DATE '2024-12-31', NUMERIC '1');

CREATE TABLE customer_updates (customer_id INT64, email STRING, country STRING, updated_at TIMESTAMP);
INSERT INTO customer_updates (customer_id, email, country, updated_at) VALUES
  (2, 'bob@new.example.org', 'DE', TIMESTAMP '2024-03-02 10:00:00+00'),
  (2, 'bob@final.example.org', 'AT', TIMESTAMP '2024-03-04 08:00:00+00'),
  (4, 'dave@example.com', 'US', TIMESTAMP '2024-03-03 12:00:00+00'),
  (7, 'grace@example.com', 'FR', TIMESTAMP '2024-03-05 09:00:00+00'),
  (7, 'grace@old.example.com', 'FR', TIMESTAMP '2024-03-01 09:00:00+00');
