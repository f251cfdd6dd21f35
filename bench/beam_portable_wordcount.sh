#!/usr/bin/env bash
# Word count of generated text through Beam 2.77's portable runner (its job
# service, `local_job_service_main`, in front of the FnApiRunner), side by
# side in one run, appended to bench/RESULTS.md:
#   - ours: crates/bigflow-beam/examples/portable_wordcount.rs submits the
#     word count, and the same binary is the SDK worker, started by Beam's
#     `worker_pool_main --container_executable=<binary>` (EXTERNAL environment);
#   - Beam Python: `apache_beam.examples.wordcount` submitted to the same job
#     service, its SDK worker started by a second `worker_pool_main` (no
#     container executable: Beam's own `SdkHarness` in a child process);
#   - ours on the DirectRunner (crates/bigflow-beam/examples/beam_bench.rs),
#     same input, for the record (no Beam involved).
# Same job service, same input (the one bench/beam_wordcount.sh generates,
# cached in $BIGFLOW_CACHE/bench-beam), outputs checked equal (sorted lines).
#
#   bench/beam_portable_wordcount.sh                # 100 MB, 3 runs each
#   MB=10 RUNS=1 bench/beam_portable_wordcount.sh   # a quicker run
#
# What is measured, RUNS runs each (medians reported):
#   - wall: the submitting command end to end (GNU time), from start until
#     the job is DONE and the submitter exits (includes Python's imports);
#   - worker CPU: user+sys of the worker processes, i.e. the CPU the worker
#     pool's children used during the job (reaped children's rusage from
#     /proc/<pool>/stat cutime+cstime, plus any child still present),
#     after every worker has exited; the pool's own CPU is listed apart;
#   - runner CPU: user+sys of the job service process over the job;
#   - submitter CPU: GNU time's user+sys of the submitting command.
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BIGFLOW_CACHE/target}"
source scripts/peers.sh
MB="${MB:-100}"
RUNS="${RUNS:-3}"
results=bench/RESULTS.md

ensure_beam
cargo build --quiet --release -p bigflow-beam --example portable_wordcount --example beam_bench
bin="$CARGO_TARGET_DIR/release/examples/portable_wordcount"
bench_bin="$CARGO_TARGET_DIR/release/examples/beam_bench"
beam="$(cd "$PEERS_DIR/apache-beam-2.77.0" && pwd)"
work="$BIGFLOW_CACHE/bench-beam"
mkdir -p "$work"
text="$work/text-$MB.txt"
[ -f "$text" ] || "$bench_bin" gen "$text" "$MB"

out="$(mktemp -d)"
started=()
cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$out"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME LOG: until PORT accepts connections (PID must live).
wait_port() {
  local port="$1" pid="$2" name="$3" log="$4" i
  for i in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited:" >&2
      cat "$log" >&2
      exit 1
    fi
    if python3 -c 'import socket, sys; socket.create_connection(("localhost", int(sys.argv[1])), 1)' "$port" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not listen on $port:" >&2
  cat "$log" >&2
  exit 1
}

# cpu PID: "own children live" CPU seconds (user+sys) of PID: its own, its
# reaped children's (cutime+cstime), and its descendants' that still exist
# (running or not yet reaped).
cpu() {
  python3 - "$1" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on
root = int(sys.argv[1])
parent = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            parent[int(d)] = int(stat(d)[1])
        except (OSError, ValueError):
            pass
def descendants(p):
    kids = [c for c, pp in parent.items() if pp == p]
    return kids + [g for k in kids for g in descendants(k)]
live = 0.0
for d in descendants(root):
    try:
        f = stat(d)
        live += (int(f[11]) + int(f[12])) / hz
    except OSError:
        pass
f = stat(root)
print(f"{(int(f[11]) + int(f[12])) / hz:.2f} {(int(f[13]) + int(f[14])) / hz:.2f} {live:.2f}")
PY
}

# children PID: how many processes PID has (running or zombie).
children() {
  local n=0 d
  for d in /proc/[0-9]*; do
    [ "$(awk '{sub(/.*\) /, ""); print $2}' "$d/stat" 2>/dev/null)" = "$1" ] && n=$((n + 1))
  done
  echo "$n"
}

job_port="$(free_port)"
"$beam/bin/python" -m apache_beam.runners.portability.local_job_service_main --port "$job_port" \
  >"$out/job_service.log" 2>&1 &
job_pid=$!
started+=("$job_pid")
ours_port="$(free_port)"
# The pool starts `python` from PATH for Beam's own workers: Beam's venv first.
PATH="$beam/bin:$PATH" "$beam/bin/python" -m apache_beam.runners.worker.worker_pool_main \
  --service_port="$ours_port" --container_executable="$bin" >"$out/pool_ours.log" 2>&1 &
ours_pool=$!
started+=("$ours_pool")
py_port="$(free_port)"
PATH="$beam/bin:$PATH" "$beam/bin/python" -m apache_beam.runners.worker.worker_pool_main \
  --service_port="$py_port" >"$out/pool_python.log" 2>&1 &
py_pool=$!
started+=("$py_pool")
wait_port "$job_port" "$job_pid" "Beam's job service" "$out/job_service.log"
wait_port "$ours_port" "$ours_pool" "the worker pool for ours" "$out/pool_ours.log"
wait_port "$py_port" "$py_pool" "the worker pool for Beam Python" "$out/pool_python.log"
cat "$text" > /dev/null  # same page cache state for every run

rows="$out/rows.tsv"
: > "$rows"

# run NAME POOL_PID OUTDIR CMD...: RUNS timed runs of a submitter whose
# workers come from POOL_PID and which writes under OUTDIR (emptied before
# each run); appends "name wall submitter_cpu worker_cpu pool_cpu runner_cpu
# workers" per run.
run() {
  local name="$1" pool="$2" dir="$3" i; shift 3
  for i in $(seq 1 "$RUNS"); do
    echo "  $name, run $i of $RUNS ..." >&2
    rm -rf "$dir"
    run_once "$name" "$pool" "$@"
  done
}

run_once() {
  local name="$1" pool="$2"; shift 2
  local p0 j0 p1 j1 i
  read -r -a p0 <<< "$(cpu "$pool")"
  read -r -a j0 <<< "$(cpu "$job_pid")"
  local spawned0
  spawned0="$(grep -c 'Starting worker with command' "$(pool_log "$pool")" || true)"
  if ! /usr/bin/time -f "%e %U %S" -o "$out/time" "$@" >"$out/log" 2>&1; then
    cat "$out/log" >&2
    echo "--- job service log:" >&2
    tail -n 50 "$out/job_service.log" >&2
    exit 1
  fi
  # The runner stops its workers when the job ends; wait until they are gone.
  for i in $(seq 1 300); do
    [ "$(children "$pool")" = 0 ] && break
    sleep 0.1
  done
  read -r -a p1 <<< "$(cpu "$pool")"
  read -r -a j1 <<< "$(cpu "$job_pid")"
  local spawned1
  spawned1="$(grep -c 'Starting worker with command' "$(pool_log "$pool")" || true)"
  read -r wall u s < "$out/time"
  python3 - "$name" "$wall" "$u" "$s" "${p0[*]}" "${p1[*]}" "${j0[*]}" "${j1[*]}" "$((spawned1 - spawned0))" >> "$rows" <<'PY'
import sys
name, wall, u, s, p0, p1, j0, j1, workers = sys.argv[1:]
p0, p1, j0, j1 = ([float(x) for x in v.split()] for v in (p0, p1, j0, j1))
worker = (p1[1] + p1[2]) - (p0[1] + p0[2])
pool = p1[0] - p0[0]
runner = sum(j1) - sum(j0)
print(f"{name}\t{wall}\t{float(u) + float(s):.2f}\t{worker:.2f}\t{pool:.2f}\t{runner:.2f}\t{workers}")
PY
}

pool_log() {
  if [ "$1" = "$ours_pool" ]; then echo "$out/pool_ours.log"; else echo "$out/pool_python.log"; fi
}

# same A B: the sorted lines of two outputs are equal.
same() {
  if ! cmp -s "$1" "$2"; then
    echo "word counts differ: $1 $2" >&2
    diff <(head -c 2000 "$1") <(head -c 2000 "$2") >&2 || true
    exit 1
  fi
}

echo "word count of $MB MB through Beam's portable runner" >&2
run "bigflow-beam SDK harness (release)" "$ours_pool" "$out/ours" \
  "$bin" --input="$text" --output="$out/ours/counts" \
  --job_endpoint="localhost:$job_port" --environment_type=EXTERNAL --environment_config="localhost:$ours_port"
cat "$out"/ours/counts-* | LC_ALL=C sort > "$out/ours.sorted"
run "Beam 2.77.0 Python SDK worker" "$py_pool" "$out/python" \
  "$beam/bin/python" -m apache_beam.examples.wordcount --input "$text" --output "$out/python/counts" \
  --runner=PortableRunner --job_endpoint="localhost:$job_port" \
  --environment_type=EXTERNAL --environment_config="localhost:$py_port"
cat "$out"/python/counts-* | LC_ALL=C sort > "$out/python.sorted"
same "$out/ours.sorted" "$out/python.sorted"

: > "$out/direct.tsv"
for i in $(seq 1 "$RUNS"); do
  echo "  bigflow-beam DirectRunner, run $i of $RUNS ..." >&2
  rm -rf "$out/direct"
  /usr/bin/time -f "%e %U %S" -o "$out/time" "$bench_bin" wordcount "$text" "$out/direct/counts" >"$out/log" 2>&1 \
    || { cat "$out/log" >&2; exit 1; }
  read -r wall u s < "$out/time"
  printf '%s\t%s\t%s\n' "$wall" "$u" "$s" >> "$out/direct.tsv"
done
cat "$out"/direct/counts-* | LC_ALL=C sort > "$out/direct.sorted"
same "$out/ours.sorted" "$out/direct.sorted"
distinct="$(wc -l < "$out/ours.sorted")"

python3 - "$rows" "$out/direct.tsv" "$results" "$MB" "$distinct" "$RUNS" <<'PY'
import datetime, os, platform, statistics, sys
rows_path, direct_path, results, mb, distinct, runs = sys.argv[1:]
mb = int(mb)
by_name = {}
for l in open(rows_path):
    if l.strip():
        name, *vals = l.rstrip("\n").split("\t")
        by_name.setdefault(name, []).append([float(v) for v in vals])
med = lambda rs, i: statistics.median(r[i] for r in rs)
direct = [[float(v) for v in l.split()] for l in open(direct_path) if l.strip()]
load = os.getloadavg()[0]
lines = [
    f"\n### {datetime.date.today().isoformat()} — Beam word count of {mb} MB through Beam 2.77.0's portable runner "
    "(its job service `local_job_service_main` and FnApiRunner; workers started as EXTERNAL environments by "
    f"Beam's `worker_pool_main`), {runs} runs each, medians "
    f"({os.cpu_count()} cores, {platform.machine()}, load average {load:.1f} at the end)\n",
    "| worker | end-to-end wall | min wall | MB/s | worker CPU (user+sys) | workers | runner CPU | submitter CPU | worker pool's own CPU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
fig = {}
for name, rs in by_name.items():
    # columns: wall, submitter, worker, pool, runner, workers
    fig[name] = (med(rs, 0), med(rs, 2))
    lines.append(f"| {name} | {med(rs, 0):.2f} s | {min(r[0] for r in rs):.2f} s | {mb / med(rs, 0):.1f} | "
                 f"{med(rs, 2):.2f} s | {med(rs, 5):.0f} | {med(rs, 4):.2f} s | {med(rs, 1):.2f} s | {med(rs, 3):.2f} s |")
dwall = statistics.median(d[0] for d in direct)
dcpu = statistics.median(d[1] + d[2] for d in direct)
lines.append(f"| bigflow-beam DirectRunner (same input, no Beam) | {dwall:.2f} s | {min(d[0] for d in direct):.2f} s | "
             f"{mb / dwall:.1f} | {dcpu:.2f} s (the whole process) | | | | |")
(ours_wall, ours_cpu), (py_wall, py_cpu) = fig.values()
lines.append(
    f"\nBeam Python's worker / ours: end to end {py_wall / ours_wall:.1f}x (target: >= 1x), worker CPU "
    f"{py_cpu / max(ours_cpu, 0.01):.1f}x (target: >= 10x). Outputs checked equal ({distinct} words), also to the DirectRunner's.")
lines.append(
    "\nSame job service, same input file (generated by `beam_bench gen`, as in the DirectRunner rows above), "
    "one worker per job (the FnApiRunner's default). Wall: the submitting command from start to exit "
    "(the job DONE), GNU time. Worker CPU: user+sys of the worker pool's child processes over the job "
    "(`/proc/<pool>/stat` cutime+cstime after the runner stopped them): our release binary started with the "
    "boot flags, or Beam's `SdkHarness` in `python -c`. Runner CPU: the job service process over the job. "
    "Submitter CPU: GNU time's user+sys of the submitting command (Python's includes importing Beam and "
    "building the pipeline).\n")
with open(results, "a") as fh:
    fh.write("\n".join(lines))
print("\n".join(lines))
PY
