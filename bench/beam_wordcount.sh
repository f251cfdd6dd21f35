#!/usr/bin/env bash
# Word count of generated text, side by side in one run, appended to
# bench/RESULTS.md:
#   - the limit: a hand-written parallel Rust word count (`beam_bench limit`:
#     the whole file in memory, one slice per core cut after a line
#     separator, keys borrowed from the input, a fast non-cryptographic hash,
#     per-thread maps merged at the end); every figure is reported against it;
#   - hand-written single-threaded Rust word count (buffered lines, one map);
#   - ours: Beam's canonical word count on the embedded DirectRunner (release),
#     and the same with a DoFn emitting (word, 1) pairs itself (one String per
#     word instead of two: what the canonical pipeline's allocations cost);
#   - PySpark 4.0.1 local[2], the same word count with the DataFrame API;
#   - Apache Beam 2.77.0 Python, its own `apache_beam.examples.wordcount`.
# The Rust variants tokenize with the same scanner, so the runner is what
# differs. Every output is checked equal to the limit's before it counts.
# Then GroupByKey and CombinePerKey with all data in memory and with a
# memory budget 10x smaller than their data: every record must come back,
# and the spilled throughput is reported against the in-memory one.
#
#   bench/beam_wordcount.sh                     # 100 MB and 1 GB
#   SIZES=100 PEERS=0 bench/beam_wordcount.sh   # quick: no Beam Python / PySpark
#   SPILL=0 ...                                 # word counts only
#
# One timed run per command (Beam Python takes minutes); wall time and peak
# RSS come from GNU time, the 1-minute load average is read before each run.
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BIGFLOW_CACHE/target}"
SIZES="${SIZES:-100 1024}"
PEERS="${PEERS:-1}"
SPILL="${SPILL:-1}"
BEAM_PY_MAX_MB="${BEAM_PY_MAX_MB:-100}"
GBK_RECORDS="${GBK_RECORDS:-2000000}"
COMBINE_RECORDS="${COMBINE_RECORDS:-8000000}"
COMBINE_KEYS="${COMBINE_KEYS:-2000000}"
results="${RESULTS:-bench/RESULTS.md}"

if [ "$PEERS" != 0 ]; then
  source scripts/peers.sh
  ensure_beam
  ensure_spark
  spark="$(cd "$PEERS_DIR/pyspark-4.0.1" && pwd)"
  export PYSPARK_PYTHON="$spark/bin/python"
fi
cargo build --quiet --release -p bigflow-beam --example beam_bench
bin="$CARGO_TARGET_DIR/release/examples/beam_bench"
work="$BIGFLOW_CACHE/bench-beam"
mkdir -p "$work"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

rows="$out/rows.tsv"
spills="$out/spills.tsv"
: > "$rows"
: > "$spills"

# timed NAME MB CMD...: one run under GNU time; appends "name mb wall_s rss_mib load".
timed() {
  local name="$1" mb="$2"; shift 2
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  echo "  $name (load $load) ..." >&2
  /usr/bin/time -f "%e %M" -o "$out/time" "$@" >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
  read -r wall rss < "$out/time"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$mb" "$wall" "$((rss / 1024))" "$load" >> "$rows"
}

# same EXPECTED DIR_OR_FILE...: the sorted lines of the files equal EXPECTED.
same() {
  local expected="$1"; shift
  if ! cat "$@" | LC_ALL=C sort | cmp -s - "$expected"; then
    echo "word counts differ from the limit's: $*" >&2
    exit 1
  fi
}

for mb in $SIZES; do
  text="$work/text-$mb.txt"
  [ -f "$text" ] || "$bin" gen "$text" "$mb"
  cat "$text" > /dev/null  # in the page cache for everyone
  echo "word count of $mb MB" >&2
  timed "limit: hand-written parallel Rust" "$mb" "$bin" limit "$text" "$out/limit-$mb"
  LC_ALL=C sort "$out/limit-$mb" > "$out/expected-$mb"
  timed "hand-written Rust, 1 thread" "$mb" "$bin" handwritten "$text" "$out/hand-$mb"
  same "$out/expected-$mb" "$out/hand-$mb"
  timed "bigflow-beam DirectRunner" "$mb" "$bin" wordcount "$text" "$out/ours-$mb"
  same "$out/expected-$mb" "$out/ours-$mb"-*
  timed "bigflow-beam DirectRunner, DoFn emits (word, 1)" "$mb" "$bin" wordcount-pairs "$text" "$out/pairs-$mb"
  same "$out/expected-$mb" "$out/pairs-$mb"-*
  if [ "$PEERS" != 0 ]; then
    timed "PySpark 4.0.1 local[2]" "$mb" "$spark/bin/python" bench/beam_wordcount_spark.py "$text" "$out/spark-$mb" "local[2]"
    same "$out/expected-$mb" "$out/spark-$mb"/part-*
    if [ "$mb" -le "$BEAM_PY_MAX_MB" ]; then
      timed "Beam 2.77.0 Python DirectRunner" "$mb" "$PEERS_DIR/apache-beam-2.77.0/bin/python" -m apache_beam.examples.wordcount \
        --input "$text" --output "$out/beam-$mb/counts"
      same "$out/expected-$mb" "$out/beam-$mb"/counts-*
    fi
  fi
  rm -f "$out/ours-$mb"-* "$out/pairs-$mb"-* "$out/hand-$mb" "$out/limit-$mb"
  rm -rf "$out/spark-$mb" "$out/beam-$mb"
done

# spill NAME CMD...: one run; appends "name wall rss load <the bench's key=value line>".
spill() {
  local name="$1"; shift
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  echo "  $name (load $load) ..." >&2
  /usr/bin/time -f "%e %M" -o "$out/time" "$@" >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
  read -r wall rss < "$out/time"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$((rss / 1024))" "$load" "$(grep -E '^(gbk|combine) ' "$out/log")" >> "$spills"
}

if [ "$SPILL" != 0 ]; then
  # GroupByKey data: the encoded records (~112 bytes each); CombinePerKey
  # data: the accumulator table of its distinct keys as the runner sizes it
  # (~94 bytes a key). The budgets are a tenth of that.
  gbk_budget=$(( (GBK_RECORDS * 112 >> 20) / 10 ))
  combine_budget=$(( (COMBINE_KEYS * 94 >> 20) / 10 ))
  echo "GroupByKey of $GBK_RECORDS records; CombinePerKey of $COMBINE_RECORDS records over $COMBINE_KEYS keys" >&2
  spill "GroupByKey, in memory" "$bin" gbk "$GBK_RECORDS" 4096
  spill "GroupByKey, budget $gbk_budget MiB" "$bin" gbk "$GBK_RECORDS" "$gbk_budget"
  spill "CombinePerKey, in memory" "$bin" combine "$COMBINE_RECORDS" "$COMBINE_KEYS" 4096
  spill "CombinePerKey, budget $combine_budget MiB" "$bin" combine "$COMBINE_RECORDS" "$COMBINE_KEYS" "$combine_budget"
fi

python3 - "$rows" "$spills" "$results" <<'PY'
import csv, datetime, os, platform, sys
rows_path, spills_path, results = sys.argv[1:]
rows = [r for r in csv.reader(open(rows_path), delimiter="\t")]
by_size = {}
for name, mb, wall, rss, load in rows:
    by_size.setdefault(int(mb), []).append((name, float(wall), int(rss), load))
lines = [f"\n### {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} — Beam word count of generated text "
         "against the hand-written parallel limit (tokens [\\w']+: one char scanner in the Rust programs, the regex engines "
         f"in Beam Python and PySpark), 1 run each ({os.cpu_count()} cores, {platform.machine()})\n"]
if by_size:
    lines += ["| input | command | wall | MB/s | % of the limit | peak RSS | ours faster by | load before |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
for mb, items in sorted(by_size.items()):
    limit = next(w for n, w, _, _ in items if n.startswith("limit"))
    ours = next(w for n, w, _, _ in items if n.startswith("bigflow"))
    for name, wall, rss, load in items:
        ratio = "" if name.startswith("bigflow") else f"{wall / ours:.1f}x"
        lines.append(f"| {mb} MB | {name} | {wall:.2f} s | {mb / wall:.1f} | {limit / wall * 100:.0f} % | {rss} MiB | {ratio} | {load} |")
if by_size:
    lines.append("\nThroughput is the input's size over the wall time of the whole command (start to exit, "
                 "output written); % of the limit is the limit's wall over the command's. Peak RSS is GNU time's: "
                 "for PySpark that is the Python driver only (its JVM is not counted).")
spills = [r for r in csv.reader(open(spills_path), delimiter="\t")]
if spills:
    lines += ["\n| shuffle | records | budget | spilled runs | spilled | wall | records/s | vs in memory | peak RSS | load before |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = {}
    for name, wall, rss, load, line in spills:
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        kind = line.split()[0]
        rate = int(f["records"]) / float(wall)
        if name.endswith("in memory"):
            base[kind] = rate
            vs = ""
        else:
            vs = f"{rate / base[kind] * 100:.0f} %" if kind in base else ""
        budget = "4096 MiB (none spills)" if name.endswith("in memory") else f"{f['budget_mb']} MiB"
        what = f"{name.split(',')[0]}" + (f" ({f['keys']} keys)" if "keys" in f else " (100k keys)")
        lines.append(f"| {what} | {f['records']} | {budget} | {f['spilled_runs']} | {f['spilled_mib']} MiB | "
                     f"{float(wall):.2f} s | {rate / 1e6:.2f} M | {vs} | {rss} MiB | {load} |")
    lines.append("\nEvery record came back in each case (the runs assert it: every GroupByKey value counted, "
                 "every key's sum checked). Budgets are a tenth of the data: for GroupByKey the encoded records, "
                 "for CombinePerKey its distinct keys' accumulator table as the runner sizes it.\n")
with open(results, "a") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
