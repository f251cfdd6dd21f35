-- TPC-H Q6: forecasting revenue change (DATE = 1994-01-01, DISCOUNT = 0.06, QUANTITY = 24).
-- DISCOUNT ± 0.01 is written out: in BigQuery `0.06 - 0.01` is FLOAT64
-- arithmetic (0.049999999999999996; `0.06 + 0.01` is 0.06999999999999999),
-- and a NUMERIC compared with a FLOAT64 expression is compared as FLOAT64,
-- which would leave out the rows with l_discount = 0.07. Literals alone
-- (`0.05`) coerce to NUMERIC, so the range is the exact one the
-- specification means.
SELECT
  SUM(l_extendedprice * l_discount) AS revenue
FROM lineitem
WHERE l_shipdate >= DATE '1994-01-01'
  AND l_shipdate < DATE_ADD(DATE '1994-01-01', INTERVAL 1 YEAR)
  AND l_discount BETWEEN 0.05 AND 0.07
  AND l_quantity < 24
