#!/usr/bin/env bash
# GoogleSQL conformance on the local warehouse (issue 17): runs every .test
# file of $BIGFLOW_CONFORMANCE_DIR (default ../shared/zetasql-compliance) and
# appends a dated per-file table (cases, pass, unsupported, wrong, skipped)
# to bench/RESULTS.md. Per-case outcomes: the test's output (--nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bigflow/target}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
BIGFLOW_CONFORMANCE_REPORT="$report" \
    cargo test -p bigflow-bigquery --test conformance -- --ignored full --nocapture
{
    printf '\n### %s — GoogleSQL conformance, local warehouse (%s cores, %s)\n\n' \
        "$(date -u +%Y-%m-%d)" "$(nproc)" "$(uname -m)"
    printf 'Google'"'"'s `zetasql/compliance/testdata` subset in `../shared/zetasql-compliance`;\n'
    printf 'run by `bench/conformance.sh` (classification: `crates/bigflow-bigquery/tests/conformance/runner.rs`).\n\n'
    cat "$report"
} >> bench/RESULTS.md
