#!/usr/bin/env python3
"""Times Spark Connect round trips from PySpark, for `bench/run spark_connect`.

Usage: spark_connect_client.py URL RUNS SQL   (or: URL generate DIR ROWS)
Each run opens a new session, submits SQL, fetches every row and stops the
session. Prints one JSON object like the Rust client (connect_bench).
"""
import json
import statistics
import sys
import time

from pyspark.sql import SparkSession


def main(url, runs, sql):
    if runs == "generate":
        spark = SparkSession.builder.remote(url).create()
        spark.range(int(sys.argv[4])).selectExpr("id % 1000 AS k", "rand(42) AS v").write.mode("overwrite").parquet(sql)
        spark.stop()
        return
    times, rows = [], 0
    for _ in range(int(runs) + 1):
        start = time.perf_counter()
        spark = SparkSession.builder.remote(url).create()
        rows = len(spark.sql(sql).collect())
        spark.stop()
        times.append((time.perf_counter() - start) * 1000)
    times = sorted(times[1:])
    print(json.dumps({"median_ms": round(statistics.median(times), 2), "min_ms": round(times[0], 2), "rows": rows, "runs": int(runs)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
