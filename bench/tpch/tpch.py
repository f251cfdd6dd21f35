"""TPC-H in BigQuery SQL: data, the DuckDB half, and the comparison (bench/tpch.sh).

    python tpch.py generate DIR SF EXTENSION   TPC-H at scale factor SF as Parquet in DIR
    python tpch.py duckdb DIR QUERY_DIR OUT_DIR RUNS [SF EXTENSION]
    python tpch.py report OURS.json DUCKDB.json OURS_DIR DUCKDB_DIR SF RESULTS.md [NOTE]

generate: DuckDB's `tpch` extension (PyPI `duckdb-extension-tpch`, the
reference dbgen) writes the eight tables, one Parquet file each, with the
types `tpchgen-cli` writes: keys BIGINT (BigQuery's INT64), money and
quantities DECIMAL(15,2) (a BigQuery NUMERIC when loaded), dates DATE, text
VARCHAR.

duckdb: runs each `QUERY_DIR/qNN.sql` RUNS times on DuckDB over views of
DIR's Parquet files. The queries are BigQuery SQL; the only rewrite is
`DATE_ADD/DATE_SUB(DATE '…', INTERVAL n UNIT)` into DuckDB's `CAST(DATE '…' ± INTERVAL n UNIT AS DATE)`.
Writes each answer to OUT_DIR/qNN.json, prints one JSON line as the Rust half does.
Given SF and the tpch extension, DuckDB's answers are also checked against
the answers the TPC-H specification publishes for that scale factor
(`tpch_answers()`; SF 1 among others), which checks the queries' text and
substitution parameters.

report: compares every answer of ours with DuckDB's (same rows in the same
order, or in another order among rows the ORDER BY leaves tied; numbers within
a relative 1e-6) and appends a dated table to RESULTS.md.
"""

import datetime
import decimal
import json
import math
import os
import platform
import re
import statistics
import sys
import time

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]


def generate(out, sf, extension):
    import duckdb

    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    con.execute(f"CALL dbgen(sf={sf})")
    for t in TABLES:
        cols = con.execute(f"DESCRIBE {t}").fetchall()
        select = ", ".join(
            f"CAST({name} AS BIGINT) AS {name}" if ty.upper() in ("INTEGER", "INT", "INT32") else name
            for name, ty, *_ in cols
        )
        tmp = f"{out}/{t}.parquet.tmp"
        con.execute(f"COPY (SELECT {select} FROM {t}) TO '{tmp}' (FORMAT PARQUET, ROW_GROUP_SIZE 122880)")
        os.replace(tmp, f"{out}/{t}.parquet")
    with open(f"{out}/.complete", "w") as f:
        f.write(f"sf={sf}\n")


DATE_ARITH = re.compile(r"DATE_(ADD|SUB)\((DATE '[^']+'),\s*(INTERVAL \d+ \w+)\)", re.IGNORECASE)


def to_duckdb(sql):
    # BigQuery's DATE_ADD/DATE_SUB of a DATE give a DATE (DuckDB's `+` a TIMESTAMP).
    return DATE_ARITH.sub(
        lambda m: f"CAST({m.group(2)} {'+' if m.group(1).upper() == 'ADD' else '-'} {m.group(3)} AS DATE)", sql
    )


def plain(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def spec_answers(sf, extension):
    """query number -> rows of the specification's answer (text), for SF."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    found = con.execute("SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ?", [float(sf)]).fetchall()
    return {n: [line.split("|") for line in a.strip().split("\n")[1:]] for n, a in found}


def matches_spec(rows, expected):
    """The spec's answers are rounded to 2 decimals (counts and keys exact)."""
    if len(rows) != len(expected):
        return False
    for r, e in zip(rows, expected):
        for a, b in zip(r.values(), e):
            x, y = number(a), number(b)
            if x is not None and y is not None:
                if abs(x - y) > 0.0051 + 1e-9 * abs(y):
                    return False
            elif str(a).strip() != str(b).strip():
                return False
    return True


def duckdb_peer(data, queries, out, runs, sf=None, extension=None):
    import duckdb

    os.makedirs(out, exist_ok=True)
    spec = spec_answers(sf, extension) if extension else {}
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}.parquet')")
    report = {}
    for name in sorted(f[:-4] for f in os.listdir(queries) if f.endswith(".sql")):
        sql = to_duckdb(open(f"{queries}/{name}.sql").read())
        seconds = []
        entry = {}
        try:
            for _ in range(runs):
                start = time.perf_counter()
                table = con.execute(sql).to_arrow_table()
                seconds.append(round(time.perf_counter() - start, 4))
            rows = [{k: plain(v) for k, v in r.items()} for r in table.to_pylist()]
            with open(f"{out}/{name}.json", "w") as f:
                json.dump(rows, f)
            entry = {"seconds": seconds, "rows": len(rows)}
            number_ = int(name.lstrip("q"))
            if number_ in spec:
                entry["spec"] = matches_spec(rows, spec[number_])
        except Exception as e:  # noqa: BLE001 - reported, not raised
            entry = {"error": str(e).splitlines()[0]}
        print(f"duckdb {name}: {entry}", file=sys.stderr)
        report[name] = entry
    print(json.dumps({"queries": report}))


def number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def same_value(a, b):
    x, y = number(a), number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    if a is None or b is None:
        return a is None and b is None
    return str(a).rstrip() == str(b).rstrip()


def same_row(a, b):
    return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))


def sort_key(row):
    key = []
    for v in row:
        x = number(v)
        key.append((0, float(f"{x:.6g}"), "") if x is not None else (1, 0.0, str(v)))
    return key


def compare(ours, theirs):
    """None when the answers are the same, else what differs."""
    a = [list(r.values()) for r in ours]
    b = [list(r.values()) for r in theirs]
    if len(a) != len(b):
        return f"{len(a)} rows, DuckDB {len(b)}"
    if a and len(a[0]) != len(b[0]):
        return f"{len(a[0])} columns, DuckDB {len(b[0])}"
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if not same_row(x, y)), None)
    if first is None:
        return None
    # Rows the ORDER BY leaves tied may come in another order.
    if all(same_row(x, y) for x, y in zip(sorted(a, key=sort_key), sorted(b, key=sort_key))):
        return None
    return f"row {first}: {a[first]} vs DuckDB {b[first]}"


def report(ours_path, duck_path, ours_dir, duck_dir, sf, results, note=""):
    ours = json.load(open(ours_path))
    duck = json.load(open(duck_path))["queries"]
    lines = [
        f"\n### {datetime.date.today().isoformat()} — TPC-H SF{sf} in BigQuery SQL (`bench/tpch.sh`), local warehouse (release) vs DuckDB 1.5.5, same Parquet files ({os.cpu_count()} cores, {platform.machine()})\n",
        "| query | ours | DuckDB | ours / DuckDB | answer |",
        "|---|---:|---:|---:|---|",
    ]
    ratios = []
    matches = 0
    failures = []
    names = sorted(set(ours["queries"]) | set(duck))
    for name in names:
        o, d = ours["queries"].get(name, {"error": "not run"}), duck.get(name, {"error": "not run"})
        os_ = statistics.median(o["seconds"]) if "seconds" in o else None
        ds_ = statistics.median(d["seconds"]) if "seconds" in d else None
        if os_ is None:
            answer = f"**fails**: {o['error'][:300]}"
            failures.append(name)
        elif ds_ is None:
            answer = f"DuckDB failed: {d['error'][:200]}"
        else:
            diff = compare(json.load(open(f"{ours_dir}/{name}.json")), json.load(open(f"{duck_dir}/{name}.json")))
            if diff is None:
                answer = f"same ({o['rows']} rows)"
                matches += 1
            else:
                answer = f"**differs**: {diff[:300]}"
                failures.append(name)
        ratio = ""
        if os_ is not None and ds_ is not None and ds_ > 0:
            ratios.append(os_ / ds_)
            ratio = f"{os_ / ds_:.2f}"
        answer = answer.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {name.upper()} | {f'{os_:.3f} s' if os_ is not None else '—'} | {f'{ds_:.3f} s' if ds_ is not None else '—'} | {ratio} | {answer} |"
        )
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
    runs = max((len(q.get("seconds", [])) for q in ours["queries"].values()), default=0)
    checked = [n for n, d in duck.items() if "spec" in d]
    spec_ok = [n for n in checked if duck[n]["spec"]]
    lines.append(
        f"\nGeometric mean of ours / DuckDB over the {len(ratios)} queries both ran: **{geo:.2f}** (target: <= 1.0). "
        f"Answers the same as DuckDB's: {matches} of {len(names)}"
        + (f"; failing or different: {', '.join(n.upper() for n in failures)}" if failures else "")
        + "."
    )
    lines.append(
        f"\nTimes are medians of {runs} runs of each query, result fetched (ours: Arrow batches of `LocalWarehouse::execute`;"
        " DuckDB: `execute(...).to_arrow_table()` over views of `read_parquet`), the two engines one after the other in one run."
        f" Loading the Parquet files into the local warehouse took {ours['load']:.1f} s (not counted; DuckDB reads them in place);"
        f" the local warehouse's peak RSS {ours['peak_rss_mib']:.0f} MiB."
        + (
            f" DuckDB's answers equal the TPC-H specification's published SF{sf} answers for {len(spec_ok)} of {len(checked)} queries"
            " (`tpch_answers()`, 2 decimals), which checks the queries' text and substitution parameters."
            if checked
            else ""
        )
        + (f" {note}" if note else "")
        + "\n"
    )
    with open(results, "a") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "generate":
        generate(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "duckdb":
        duckdb_peer(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), *sys.argv[6:8])
    elif command == "report":
        report(*sys.argv[2:8], *(sys.argv[8:9] or [""]))
    else:
        sys.exit(__doc__)
