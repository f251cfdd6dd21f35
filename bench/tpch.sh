#!/usr/bin/env bash
# TPC-H in BigQuery SQL (issue 17): the 22 queries of bench/tpch/ on the local
# warehouse (release build of crates/bigflow-bigquery/examples/warehouse_queries.rs)
# and on DuckDB 1.5.5 (the bqemulator venv's), over the same Parquet files, in
# one run; every answer of ours is compared with DuckDB's, and a dated table
# (query, ours, DuckDB, ratio, answer) with the geometric mean of ours/DuckDB
# is appended to bench/RESULTS.md.
#
#   bench/tpch.sh            TPCH_SF (default 1), TPCH_RUNS runs per query (default 3)
#
# Data: DuckDB's tpch extension (PyPI duckdb-extension-tpch 1.5.5, the
# reference dbgen) in a venv under $BIGFLOW_CACHE/tools writes the tables once
# to $BIGFLOW_CACHE/bench-tpch/sf$TPCH_SF/*.parquet (SF1: ~0.3 GB); later runs
# reuse them. TPCH_TIMEOUT (seconds, default 600) bounds each of our queries;
# TPCH_BUILD=0 skips the release build (times the binary already built).
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BIGFLOW_CACHE/target}"
source scripts/peers.sh
sf="${TPCH_SF:-1}"
runs="${TPCH_RUNS:-3}"
data="$BIGFLOW_CACHE/bench-tpch/sf$sf"
results="${TPCH_RESULTS:-bench/RESULTS.md}"

ensure_bigquery_emulator
py="$PEERS_DIR/bqemulator-1.4/bin/python"

# The generator, also the source of the specification's answers: DuckDB's
# tpch extension's wheel, in its own venv (pinned).
(PEERS_DIR="$BIGFLOW_CACHE/tools" venv_install duckdb-tpch-1.5.5 "duckdb==1.5.5" "duckdb-extension-tpch==1.5.5")
ext="$(find "$BIGFLOW_CACHE/tools/duckdb-tpch-1.5.5" -name tpch.duckdb_extension | head -n 1)"
[ -n "$ext" ] || { echo "tpch.duckdb_extension not found in $BIGFLOW_CACHE/tools/duckdb-tpch-1.5.5"; exit 1; }
if [ ! -f "$data/.complete" ]; then
  echo "generating TPC-H SF$sf into $data"
  "$BIGFLOW_CACHE/tools/duckdb-tpch-1.5.5/bin/python" bench/tpch/tpch.py generate "$data" "$sf" "$ext"
fi
echo "TPC-H SF$sf data: $(du -sh "$data" | cut -f1) in $data"

# TPCH_BUILD=0: time the release binary already built (sources changed since
# would otherwise mean a long release build first).
[ "${TPCH_BUILD:-1}" = 0 ] || cargo build --quiet --release -p bigflow-bigquery --example warehouse_queries
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$CARGO_TARGET_DIR/release/examples/warehouse_queries" tpch "$data" bench/tpch "$tmp/ours" "$runs" > "$tmp/ours.json"
"$py" -W ignore bench/tpch/tpch.py duckdb "$data" bench/tpch "$tmp/duckdb" "$runs" "$sf" "$ext" > "$tmp/duckdb.json"
"$py" bench/tpch/tpch.py report "$tmp/ours.json" "$tmp/duckdb.json" "$tmp/ours" "$tmp/duckdb" "$sf" "$results" \
  "Data: $(du -sh "$data" | cut -f1) of Parquet; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
