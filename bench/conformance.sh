#!/usr/bin/env bash
# GoogleSQL conformance (issue 17) on the local warehouse and on bqemulator
# side by side: runs every .test file of $BIGFLOW_CONFORMANCE_DIR (default
# ../shared/zetasql-compliance) on both (at the same time) and appends a dated
# per-file table (cases; pass, unsupported, wrong, skipped for each) to
# bench/RESULTS.md. The peer's cases go to bqemulator over BigQuery's REST API
# (jobs.insert + getQueryResults, a dataset per file); an error of the peer
# counts as unsupported unless the case expects an error.
#
#   bench/conformance.sh                      ours and bqemulator
#   CONFORMANCE_PEER=none bench/conformance.sh  ours only
#
# Per-case outcomes (lines `WRONG file:case: why`, `bqemulator UNSUPPORTED …`)
# are kept in $CARGO_TARGET_DIR/conformance.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BIGFLOW_CACHE/target}"
peer="${CONFORMANCE_PEER:-bqemulator}"
if [ "$peer" = bqemulator ]; then
    source scripts/peers.sh
    ensure_bigquery_emulator
    export BIGFLOW_CONFORMANCE_PEER=bqemulator BIGFLOW_REQUIRE_PEERS=1
fi
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
log="$CARGO_TARGET_DIR/conformance.log"
BIGFLOW_CONFORMANCE_REPORT="$report" \
    cargo test -p bigflow-bigquery --test conformance -- --ignored full --nocapture > "$log" 2>&1 \
    || { tail -n 40 "$log"; exit 1; }
grep -E '^(local|bqemulator) run in' "$log" || true
{
    if [ "$peer" = bqemulator ]; then
        printf '\n### %s — GoogleSQL conformance, local warehouse and bqemulator 1.4 (%s cores, %s)\n\n' \
            "$(date -u +%Y-%m-%d)" "$(nproc)" "$(uname -m)"
    else
        printf '\n### %s — GoogleSQL conformance, local warehouse (%s cores, %s)\n\n' \
            "$(date -u +%Y-%m-%d)" "$(nproc)" "$(uname -m)"
    fi
    printf 'Google'"'"'s `zetasql/compliance/testdata` subset in `../shared/zetasql-compliance`;\n'
    printf 'run by `bench/conformance.sh` (classification: `crates/bigflow-bigquery/tests/conformance/runner.rs`'
    if [ "$peer" = bqemulator ]; then
        printf ';\nthe bqemulator columns: the same cases over BigQuery'"'"'s REST API, `conformance/peer.rs`, its errors counted as unsupported'
    fi
    printf ').\n\n'
    cat "$report"
} | tee -a bench/RESULTS.md
