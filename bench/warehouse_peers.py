"""The warehouse benchmark's data and its two peers.

    python warehouse_peers.py generate DIR ROWS   star schema as Parquet in DIR
    python warehouse_peers.py duckdb DIR          the queries on DuckDB over DIR's Parquet
    python warehouse_peers.py emulator DIR URL    the same SQL on bqemulator at URL
    python warehouse_peers.py queries             the queries as JSON (for the Rust half)

Data (deterministic): a fact table `sales` of ROWS rows over 31 days of
January 2024, and dimensions `stores` (1 000), `products` (10 000),
`customers` (100 000). Each peer prints one line of JSON: seconds per query.
The queries are what BigFlow jobs typically run; `{t}` stands for a table's
name as each engine spells it.
"""

import json
import os
import sys
import time

QUERIES = {
    # A daily-partition write_truncate of an aggregation.
    "daily_aggregate": """
        SELECT store_id, product_id, SUM(amount) AS revenue, SUM(quantity) AS units, COUNT(*) AS n
        FROM {sales} WHERE sale_date = DATE '2024-01-15'
        GROUP BY store_id, product_id""",
    # Join + group by.
    "join_group_by": """
        SELECT s.country, p.category, SUM(f.amount) AS revenue, COUNT(*) AS n
        FROM {sales} AS f
        JOIN {stores} AS s ON f.store_id = s.store_id
        JOIN {products} AS p ON f.product_id = p.product_id
        GROUP BY s.country, p.category
        ORDER BY revenue DESC""",
    # A window function over a daily aggregate.
    "window": """
        SELECT store_id, sale_date, revenue,
               SUM(revenue) OVER (PARTITION BY store_id ORDER BY sale_date
                                  ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS rolling_7d
        FROM (SELECT store_id, sale_date, SUM(amount) AS revenue FROM {sales} GROUP BY store_id, sale_date)""",
    # collect of 100 k rows.
    "collect_100k": """
        SELECT sale_id, sale_date, store_id, product_id, customer_id, quantity, amount
        FROM {sales} WHERE sale_id < 100000""",
}

TABLES = ["sales", "stores", "products", "customers"]

SCHEMAS = {
    "sales": [("sale_id", "INT64"), ("sale_date", "DATE"), ("store_id", "INT64"), ("product_id", "INT64"),
              ("customer_id", "INT64"), ("quantity", "INT64"), ("amount", "FLOAT64")],
    "stores": [("store_id", "INT64"), ("city", "STRING"), ("country", "STRING")],
    "products": [("product_id", "INT64"), ("category", "STRING"), ("brand", "STRING"), ("price", "FLOAT64")],
    "customers": [("customer_id", "INT64"), ("segment", "STRING"), ("signup_date", "DATE")],
}


def generate(out, rows):
    import duckdb

    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(
        f"""COPY (SELECT i AS sale_id,
                        DATE '2024-01-01' + CAST(i % 31 AS INTEGER) AS sale_date,
                        CAST(hash(i * 7) % 1000 AS BIGINT) AS store_id,
                        CAST(hash(i * 13) % 10000 AS BIGINT) AS product_id,
                        CAST(hash(i * 17) % 100000 AS BIGINT) AS customer_id,
                        CAST(1 + hash(i * 19) % 5 AS BIGINT) AS quantity,
                        CAST((hash(i * 23) % 100000) / 100.0 AS DOUBLE) AS amount
                 FROM range({rows}) t(i))
            TO '{out}/sales.parquet' (FORMAT PARQUET, ROW_GROUP_SIZE 1000000)"""
    )
    con.execute(
        f"""COPY (SELECT i AS store_id, 'city_' || (i % 97) AS city,
                        ['POLAND','GERMANY','NETHERLANDS','BELGIUM','LITHUANIA'][1 + i % 5] AS country
                 FROM range(1000) t(i)) TO '{out}/stores.parquet' (FORMAT PARQUET)"""
    )
    con.execute(
        f"""COPY (SELECT i AS product_id, 'category_' || (i % 40) AS category,
                        'brand_' || (i % 300) AS brand, CAST(1 + i % 500 AS DOUBLE) AS price
                 FROM range(10000) t(i)) TO '{out}/products.parquet' (FORMAT PARQUET)"""
    )
    con.execute(
        f"""COPY (SELECT i AS customer_id, 'segment_' || (i % 7) AS segment,
                        DATE '2020-01-01' + CAST(i % 1400 AS INTEGER) AS signup_date
                 FROM range(100000) t(i)) TO '{out}/customers.parquet' (FORMAT PARQUET)"""
    )


def timed(run):
    start = time.perf_counter()
    run()
    return round(time.perf_counter() - start, 4)


def duckdb_peer(data):
    import duckdb

    con = duckdb.connect()
    names = {t: f"read_parquet('{data}/{t}.parquet')" for t in TABLES}
    result = {}
    for name, sql in QUERIES.items():
        q = sql.format(**names)
        if name == "daily_aggregate":
            # Written out like a partition write.
            out = f"{data}/duckdb_daily.parquet"
            result[name] = timed(lambda: con.execute(f"COPY ({q}) TO '{out}' (FORMAT PARQUET)"))
        else:
            result[name] = timed(lambda: con.execute(q).to_arrow_table())
    print(json.dumps(result))


def emulator_peer(data, url):
    import urllib.request

    def call(method, path, body=None, raw=None, content_type="application/json"):
        data_bytes = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url + path, data=data_bytes, method=method, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=3600) as r:
            text = r.read().decode()
            return json.loads(text) if text else {}

    call("POST", "/bigquery/v2/projects/p1/datasets", {"datasetReference": {"projectId": "p1", "datasetId": "bench"}})
    load_seconds = 0.0
    for t in TABLES:
        # The emulator cannot create a table from a Parquet load: create it first.
        call("POST", "/bigquery/v2/projects/p1/datasets/bench/tables", {
            "tableReference": {"projectId": "p1", "datasetId": "bench", "tableId": t},
            "schema": {"fields": [{"name": n, "type": ty} for n, ty in SCHEMAS[t]]}})
        meta = json.dumps({
            "jobReference": {"projectId": "p1", "jobId": f"load_{t}"},
            "configuration": {"load": {
                "destinationTable": {"projectId": "p1", "datasetId": "bench", "tableId": t},
                "sourceFormat": "PARQUET", "writeDisposition": "WRITE_TRUNCATE", "createDisposition": "CREATE_IF_NEEDED"}},
        })
        with open(f"{data}/{t}.parquet", "rb") as f:
            payload = f.read()
        body = (b"--b\r\nContent-Type: application/json\r\n\r\n" + meta.encode()
                + b"\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--b--\r\n")
        answer = {}
        load_seconds += timed(lambda: answer.update(call(
            "POST", "/upload/bigquery/v2/projects/p1/jobs?uploadType=multipart",
            raw=body, content_type="multipart/related; boundary=b")))
        if answer.get("status", {}).get("errorResult"):
            sys.exit(f"loading {t} into the emulator failed: {answer['status']['errorResult']}")
    names = {t: f"`p1.bench.{t}`" for t in TABLES}
    result = {"load": round(load_seconds, 4)}
    for name, sql in QUERIES.items():
        q = sql.format(**names)
        config = {"query": {"query": q, "useLegacySql": False}}
        if name == "daily_aggregate":
            config["query"].update({
                "destinationTable": {"projectId": "p1", "datasetId": "bench", "tableId": "daily"},
                "writeDisposition": "WRITE_TRUNCATE", "createDisposition": "CREATE_IF_NEEDED"})

        def run():
            job = call("POST", "/bigquery/v2/projects/p1/jobs",
                       {"jobReference": {"projectId": "p1", "jobId": f"q_{name}_{time.time_ns()}"}, "configuration": config})
            job_id = job["jobReference"]["jobId"]
            if name == "daily_aggregate":
                while job.get("status", {}).get("state") != "DONE":
                    job = call("GET", f"/bigquery/v2/projects/p1/jobs/{job_id}")
                return
            token = None
            while True:
                page = call("GET", f"/bigquery/v2/projects/p1/queries/{job_id}?maxResults=100000"
                            + (f"&pageToken={token}" if token else ""))
                token = page.get("pageToken")
                if page.get("jobComplete") and not token:
                    break

        result[name] = timed(run)
    print(json.dumps(result))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    elif command == "duckdb":
        duckdb_peer(sys.argv[2])
    elif command == "queries":
        print(json.dumps(QUERIES))
    elif command == "emulator":
        emulator_peer(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
