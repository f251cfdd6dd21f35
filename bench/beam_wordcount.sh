#!/usr/bin/env bash
# Word count of generated text, side by side in one run, appended to
# bench/RESULTS.md:
#   - ours: Beam's canonical word count on the embedded DirectRunner (release);
#   - hand-written single-pass Rust word count (the practical limit; both Rust
#     variants tokenize with the same scanner, so the runner is what differs);
#   - Apache Beam 2.77.0 Python, its own `apache_beam.examples.wordcount`;
#   - PySpark 4.0.1 local[2], the same word count with the DataFrame API.
# Every output is checked equal to the hand-written one before it counts.
# Then a GroupByKey whose data exceeds the memory budget, to show spilling.
#
#   bench/beam_wordcount.sh                 # 100 MB
#   SIZES="100 1024" bench/beam_wordcount.sh  # also 1 GB (Beam Python only up to BEAM_PY_MAX_MB=100)
#
# One timed run per command (Beam Python takes minutes); wall time and peak
# RSS come from GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BIGFLOW_CACHE/target}"
source scripts/peers.sh
SIZES="${SIZES:-100}"
BEAM_PY_MAX_MB="${BEAM_PY_MAX_MB:-100}"
GBK_RECORDS="${GBK_RECORDS:-4000000}"
GBK_BUDGET_MB="${GBK_BUDGET_MB:-64}"
results=bench/RESULTS.md

ensure_beam
ensure_spark
cargo build --quiet --release -p bigflow-beam --example beam_bench
bin="$CARGO_TARGET_DIR/release/examples/beam_bench"
work="$BIGFLOW_CACHE/bench-beam"
mkdir -p "$work"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
spark="$(cd "$PEERS_DIR/pyspark-4.0.1" && pwd)"
export PYSPARK_PYTHON="$spark/bin/python"

rows="$out/rows.tsv"
: > "$rows"

# timed NAME MB CMD...: one run under GNU time; appends "name mb wall_s rss_mib".
timed() {
  local name="$1" mb="$2"; shift 2
  echo "  $name ..." >&2
  /usr/bin/time -f "%e %M" -o "$out/time" "$@" >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
  read -r wall rss < "$out/time"
  printf '%s\t%s\t%s\t%s\n' "$name" "$mb" "$wall" "$((rss / 1024))" >> "$rows"
}

# same EXPECTED DIR_OR_FILE...: the sorted lines of the files equal EXPECTED.
same() {
  local expected="$1"; shift
  if ! cat "$@" | LC_ALL=C sort | cmp -s - "$expected"; then
    echo "word counts differ from the hand-written ones: $*" >&2
    exit 1
  fi
}

for mb in $SIZES; do
  text="$work/text-$mb.txt"
  [ -f "$text" ] || "$bin" gen "$text" "$mb"
  echo "word count of $mb MB" >&2
  timed "hand-written Rust, 1 thread" "$mb" "$bin" handwritten "$text" "$out/hand-$mb"
  LC_ALL=C sort "$out/hand-$mb" > "$out/expected-$mb"
  timed "bigflow-beam DirectRunner" "$mb" "$bin" wordcount "$text" "$out/ours-$mb"
  same "$out/expected-$mb" "$out/ours-$mb"-*
  timed "PySpark 4.0.1 local[2]" "$mb" "$spark/bin/python" bench/beam_wordcount_spark.py "$text" "$out/spark-$mb" "local[2]"
  same "$out/expected-$mb" "$out/spark-$mb"/part-*
  if [ "$mb" -le "$BEAM_PY_MAX_MB" ]; then
    timed "Beam 2.77.0 Python DirectRunner" "$mb" "$PEERS_DIR/apache-beam-2.77.0/bin/python" -m apache_beam.examples.wordcount \
      --input "$text" --output "$out/beam-$mb/counts"
    same "$out/expected-$mb" "$out/beam-$mb"/counts-*
  fi
done

echo "GroupByKey of $GBK_RECORDS records with a $GBK_BUDGET_MB MiB budget" >&2
/usr/bin/time -f "%e %M" -o "$out/time" "$bin" gbk "$GBK_RECORDS" "$GBK_BUDGET_MB" > "$out/gbk" 2>&1
gbk_line="$(grep '^gbk ' "$out/gbk")"
read -r gbk_wall gbk_rss < "$out/time"

python3 - "$rows" "$results" "$gbk_line" "$gbk_wall" "$gbk_rss" <<'PY'
import csv, datetime, os, platform, sys
rows_path, results, gbk_line, gbk_wall, gbk_rss = sys.argv[1:]
rows = [r for r in csv.reader(open(rows_path), delimiter="\t")]
by_size = {}
for name, mb, wall, rss in rows:
    by_size.setdefault(int(mb), []).append((name, float(wall), int(rss)))
load = os.getloadavg()[0]
lines = [f"\n### {datetime.date.today().isoformat()} — Beam word count of generated text (tokens [\\w']+: one char scanner in both Rust "
         "variants, the regex engines in Beam Python and PySpark), 1 run each "
         f"({os.cpu_count()} cores, {platform.machine()}, load average {load:.1f} at the end)\n",
         "| input | command | wall | MB/s | peak RSS | ours faster by |", "|---|---|---:|---:|---:|---:|"]
for mb, items in sorted(by_size.items()):
    ours = next(w for n, w, _ in items if n.startswith("bigflow"))
    for name, wall, rss in items:
        ratio = "" if name.startswith("bigflow") else f"{wall / ours:.1f}x"
        lines.append(f"| {mb} MB | {name} | {wall:.2f} s | {mb / wall:.1f} | {rss} MiB | {ratio} |")
    hand = next(w for n, w, _ in items if n.startswith("hand"))
    lines.append(f"| {mb} MB | ours / hand-written throughput | | | | {hand / ours * 100:.0f} % |")
lines.append("\nPeak RSS is GNU time's: for PySpark that is the Python driver only (its JVM is not counted).")
f = dict(kv.split("=", 1) for kv in gbk_line.split()[1:])
lines.append(f"\nGroupByKey over budget: {f['records']} records (~{int(f['records']) * 110 >> 20} MiB encoded) grouped with a "
             f"{f['budget_mb']} MiB budget: {f['spilled_runs']} runs, {f['spilled_mib']} MiB spilled, "
             f"{float(gbk_wall):.2f} s, peak RSS {int(gbk_rss) // 1024} MiB; every record came back (asserted).\n")
with open(results, "a") as fh:
    fh.write("\n".join(lines))
print("\n".join(lines))
PY
