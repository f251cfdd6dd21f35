#!/usr/bin/env python3
"""Median DagBag parse time of single DAG files, side by side.

Usage: AIRFLOW_HOME=... python dag_parse.py RUNS NAME=FILE [NAME=FILE ...]
Run with an Airflow venv's Python. Airflow itself is imported once (warm-up
parse of each file first); then each file is parsed RUNS times in turn by a
fresh DagBag, which re-executes the file. Prints JSON: name, median and min
milliseconds, import errors, as the last line of stdout.
"""
import json
import statistics
import sys
import time

from airflow.models.dagbag import DagBag


def parse(path):
    start = time.perf_counter()
    bag = DagBag(path, include_examples=False)
    return time.perf_counter() - start, bag


def main(runs, *pairs):
    files = [p.split("=", 1) for p in pairs]
    results = {}
    for name, path in files:
        _, bag = parse(path)
        results[name] = {"times": [], "import_errors": len(bag.import_errors), "dags": len(bag.dags)}
    for _ in range(int(runs)):
        for name, path in files:
            elapsed, _ = parse(path)
            results[name]["times"].append(elapsed)
    out = []
    for name, r in results.items():
        out.append({
            "name": name,
            "median_ms": round(statistics.median(r["times"]) * 1000, 2),
            "min_ms": round(min(r["times"]) * 1000, 2),
            "import_errors": r["import_errors"],
            "dags": r["dags"],
        })
    # One line, last: Airflow logs to stdout too.
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
