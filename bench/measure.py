#!/usr/bin/env python3
"""Runs commands repeatedly and reports wall time and peak RSS side by side.

Usage: measure.py --runs N --name NAME -- CMD... [--name NAME2 -- CMD2...]
Each command is run twice to warm caches, then N times; wall time comes from
perf_counter around spawn+wait. Peak RSS comes from GNU time (`%M`) in a
separate pass: a child's maxrss also counts the memory of the process that
forked it, so measuring from Python would add Python's ~14 MiB to every
command (GNU time itself is ~2 MiB). Prints a JSON list of results on stdout.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


def peak_rss_mib(cmd, env):
    """Peak RSS of one run of cmd, in MiB, via GNU time."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run([GNU_TIME, "-f", "%M", "-o", out.name, *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env, check=True)
        return int(out.read().strip().splitlines()[-1]) / 1024.0


def measure(cmd, runs, env):
    walls, rss = [], []
    for i in range(runs + 2):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"{cmd} exited with {code}")
        if i >= 2:
            walls.append(wall)
            rss.append(peak_rss_mib(cmd, env) if os.path.exists(GNU_TIME) else usage.ru_maxrss / 1024.0)
    return {
        "median_ms": round(statistics.median(walls) * 1000, 2),
        "min_ms": round(min(walls) * 1000, 2),
        "peak_rss_mib": round(statistics.median(rss), 1),
        "runs": runs,
    }


def main(argv):
    runs = 20
    jobs = []
    i = 0
    while i < len(argv):
        if argv[i] == "--runs":
            runs = int(argv[i + 1])
            i += 2
        elif argv[i] == "--name":
            name = argv[i + 1]
            assert argv[i + 2] == "--", "expected -- after --name NAME"
            j = i + 3
            while j < len(argv) and argv[j] != "--name":
                j += 1
            jobs.append((name, argv[i + 3 : j]))
            i = j
        else:
            sys.exit(f"unexpected argument {argv[i]}")
    results = []
    for name, cmd in jobs:
        r = measure(cmd, runs, os.environ.copy())
        r["name"] = name
        results.append(r)
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
