#!/usr/bin/env bash
# Build times a new user meets (issue 16), appended to bench/RESULTS.md:
#
#   bench/build_times.sh [starter] [starter_bigquery] [examples]   (default: all)
#
# starter: a fresh `bigflow start-project` (default features: no engine beyond
#   the core), its first `bigflow run --workflow hello_world`, the same after a
#   one-line change, then `bigflow build` (tests, release binary, image, DAGs)
#   and again after a one-line change.
# starter_bigquery: the same with BIGFLOW_FEATURES=bigquery (DataFusion).
# examples: the examples' first `cargo run -p bigflow-examples -- run`
#   (default features: DataFusion, Spark Connect, Beam) in a clone of HEAD,
#   and after a one-line change.
#
# "Cold" is an empty target directory (each project's own `target/`, as a new
# user has it) with the crates already downloaded: the registry cache is warm,
# so the figures are compile and link time, not download time.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
results="$root/bench/RESULTS.md"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bigflow/target}"
cargo build --quiet -p bigflow-cli
tool="$CARGO_TARGET_DIR/debug/bigflow"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rows="$work/rows.tsv"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# timed LABEL CMD...: runs CMD quietly, records its wall time in seconds.
timed() {
  local label="$1"; shift
  local start end
  start="$(date +%s.%N)"
  if ! "$@" >"$work/last.log" 2>&1; then
    echo "bench/build_times.sh: '$label' failed:" >&2
    tail -20 "$work/last.log" >&2
    exit 1
  fi
  end="$(date +%s.%N)"
  printf '%s\t%.1f\n' "$label" "$(echo "$end - $start" | bc)" >> "$rows"
}

# edit FILE: a one-line change (toggles a printed word).
edit() {
  sed -i 's/Goodbye!/Goodbye again!/; t; s/Goodbye again!/Goodbye!/' "$1"
}

starter() {
  local name="$1" features="$2" dir="$work/$1"
  mkdir -p "$dir"
  (cd "$dir" && env -u CARGO_TARGET_DIR "$tool" start-project starter >/dev/null)
  cd "$dir/starter"
  git init -q && git add -A && git commit -qm starter
  local hello=src/workflows/hello_world.rs
  timed "$name: first \`bigflow run --workflow hello_world\` (cold)" \
    env -u CARGO_TARGET_DIR BIGFLOW_FEATURES="$features" "$tool" run --workflow hello_world
  edit "$hello"
  timed "$name: \`bigflow run --workflow hello_world\` after a one-line change" \
    env -u CARGO_TARGET_DIR BIGFLOW_FEATURES="$features" "$tool" run --workflow hello_world
  git commit -qam edit
  timed "$name: first \`bigflow build\` (release cold; debug build warm from the runs)" \
    env -u CARGO_TARGET_DIR BIGFLOW_FEATURES="$features" "$tool" build
  edit "$hello" && git commit -qam edit
  timed "$name: \`bigflow build\` after a one-line change" \
    env -u CARGO_TARGET_DIR BIGFLOW_FEATURES="$features" "$tool" build
  printf '%s: release binary\t%s MB\n' "$name" \
    "$(echo "scale=1; $(stat -c %s target/release/starter) / 1000000" | bc)" >> "$rows"
  printf '%s: image, compressed\t%s\n' "$name" \
    "$(env -u CARGO_TARGET_DIR BIGFLOW_FEATURES="$features" "$tool" build-image --no-export 2>/dev/null | sed -n 's/.*(\([0-9.]* MB\) compressed.*/\1/p')" >> "$rows"
  cd "$root"
}

bench_starter() { starter "starter" ""; }
bench_starter_bigquery() { starter "starter + bigquery" "bigquery"; }

bench_examples() {
  git clone --quiet "$root" "$work/examples"
  cd "$work/examples"
  timed "examples: first \`cargo run -p bigflow-examples -- run --workflow hello_world\` (cold)" \
    env -u CARGO_TARGET_DIR cargo run --quiet -p bigflow-examples -- run --workflow hello_world
  edit examples/bigflow-examples/src/workflows/hello_world.rs
  timed "examples: the same after a one-line change" \
    env -u CARGO_TARGET_DIR cargo run --quiet -p bigflow-examples -- run --workflow hello_world
  cd "$root"
}

[ $# -gt 0 ] || set -- starter starter_bigquery examples
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for b in "$@"; do
  "bench_$b"
done
python3 - "$rows" "$results" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys, datetime, os, platform
rows, out, before, after = sys.argv[1:5]
lines = [f"\n### {datetime.date.today().isoformat()} — build times a new user meets, 1 run each "
         f"({os.cpu_count()} cores, {platform.machine()}, load average {before} before, {after} after)\n",
         "Targets: starter first run <= 3 min cold, <= 5 s after a one-line change; "
         "`bigflow build` of the starter <= 8 min cold, <= 1 min after a one-line change. "
         "Cold = empty target directory, crates already downloaded.\n",
         "| build | time |", "|---|---:|"]
for line in open(rows):
    label, value = line.rstrip("\n").split("\t")
    lines.append(f"| {label} | {value if ' ' in value else value + ' s'} |")
with open(out, "a") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
