//! "Nothing lost, nothing crashes": what fuzzing the local warehouse found,
//! each case with the clear error it must give now.
//!
//! - a table whose data file is missing is damaged: every read and write
//!   fails (nothing reads as empty, nothing is overwritten) until the file
//!   is back;
//! - INT64 overflow and dates out of BigQuery's range are errors, not
//!   wrapped or stored values;
//! - huge intervals and non-ASCII time zones are errors, not panics;
//! - deep expressions, many UNIONs, huge strings and endless recursion are
//!   refused with the limit named.

use std::path::{Path, PathBuf};

use bigflow_bigquery::{Backend, LocalWarehouse, QueryContext, TableId, WriteMode};

fn warehouse() -> (tempfile::TempDir, LocalWarehouse, QueryContext) {
    let dir = tempfile::tempdir().unwrap();
    let w = LocalWarehouse::open(dir.path()).unwrap();
    let ctx = QueryContext {
        default_project: "p".into(),
        default_dataset: "d".into(),
        ..QueryContext::default()
    };
    (dir, w, ctx)
}

/// The error of a statement that must fail.
fn error(w: &LocalWarehouse, ctx: &QueryContext, sql: &str) -> String {
    match w.execute(sql, ctx) {
        Ok(r) => panic!("expected an error from {sql}, got {} row(s)", r.num_rows()),
        Err(e) => e.to_string(),
    }
}

/// The first column of the first row, as text.
fn value(w: &LocalWarehouse, ctx: &QueryContext, sql: &str) -> String {
    let r = w.execute(sql, ctx).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let b = &r.batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    arrow::util::display::array_value_to_string(b.column(0), 0).unwrap()
}

fn data_files(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("p/d").join(table).join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_table_with_a_missing_file_fails_every_read_and_write_until_the_file_is_back() {
    let (dir, w, ctx) = warehouse();
    w.execute(
        "CREATE TABLE t (id INT64, name STRING);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');
         INSERT INTO t VALUES (3, 'c');
         CREATE TABLE s AS SELECT 1 AS id, 'z' AS name",
        &ctx,
    )
    .unwrap();
    let files = data_files(dir.path(), "t");
    assert_eq!(files.len(), 2);
    let manifest = std::fs::read(dir.path().join("p/d/t/_manifest.json")).unwrap();
    let aside = dir.path().join("aside.parquet");
    std::fs::rename(&files[0], &aside).unwrap();

    let damaged = |e: &str| {
        assert!(
            e.contains("table `p.d.t` is damaged: file")
                && e.contains("is missing")
                && e.contains("restore the file"),
            "{e}"
        );
    };
    for sql in [
        "SELECT * FROM t",
        "SELECT COUNT(*) FROM t",
        "UPDATE t SET name = 'x' WHERE TRUE",
        "DELETE FROM t WHERE id = 1",
        "INSERT INTO t VALUES (4, 'd')",
        "MERGE t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name \
         WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)",
        "CREATE OR REPLACE TABLE t AS SELECT 1 AS id, 'a' AS name",
        "CREATE TABLE u AS SELECT * FROM t",
    ] {
        damaged(&error(&w, &ctx, sql));
    }
    let id = TableId::new("p", "d", "t").unwrap();
    for mode in [WriteMode::Truncate, WriteMode::Append] {
        let e = w
            .write_query(&id, None, mode, "SELECT 9 AS id, 'n' AS name", &ctx)
            .unwrap_err()
            .to_string();
        damaged(&e);
    }
    // Nothing was written or collected: the manifest and the other file are as they were.
    assert_eq!(
        std::fs::read(dir.path().join("p/d/t/_manifest.json")).unwrap(),
        manifest
    );
    assert!(files[1].exists());
    assert!(!dir.path().join("p/d/u").join("_manifest.json").exists());

    // The file is back: all rows read again, and writes work.
    std::fs::rename(&aside, &files[0]).unwrap();
    assert_eq!(value(&w, &ctx, "SELECT COUNT(*) FROM t"), "3");
    w.execute("UPDATE t SET name = 'x' WHERE id = 1", &ctx)
        .unwrap();
    assert_eq!(
        value(&w, &ctx, "SELECT STRING_AGG(name, ',' ORDER BY id) FROM t"),
        "x,b,c"
    );
}

#[test]
fn a_damaged_table_can_be_dropped_and_a_truncated_file_is_damage_too() {
    let (dir, w, ctx) = warehouse();
    w.execute(
        "CREATE TABLE t (id INT64); INSERT INTO t VALUES (1), (2)",
        &ctx,
    )
    .unwrap();
    let file = &data_files(dir.path(), "t")[0];
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
    let e = error(&w, &ctx, "SELECT * FROM t");
    assert!(e.contains("is damaged") && e.contains("bytes"), "{e}");
    w.execute("DROP TABLE t", &ctx).unwrap();
    w.execute("CREATE TABLE t (id INT64)", &ctx).unwrap();
    assert_eq!(value(&w, &ctx, "SELECT COUNT(*) FROM t"), "0");
}

#[test]
fn int64_overflow_is_an_error_and_nothing_is_stored() {
    let (_dir, w, ctx) = warehouse();
    w.execute(
        "CREATE TABLE t (n INT64, d DATE); INSERT INTO t VALUES (9223372036854775807, DATE '2020-01-01')",
        &ctx,
    )
    .unwrap();
    for sql in [
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775807 - 2",
        "SELECT 4611686018427387904 * 2",
        "SELECT n + 1 FROM t",
        "SELECT -x FROM UNNEST([-9223372036854775807 - 1]) AS x",
        "SELECT SUM(n) FROM t, UNNEST([1, 2]) AS x",
        "SELECT SUM(x) FROM UNNEST([9223372036854775807, 1]) AS x",
        "SELECT k, SUM(x) FROM UNNEST([9223372036854775807, 1]) AS x, UNNEST(['a']) AS k GROUP BY k",
        "SELECT SUM(DISTINCT x) FROM UNNEST([9223372036854775807, 1]) AS x",
        "SELECT SUM(x) OVER (ORDER BY x) FROM UNNEST([9223372036854775807, 1]) AS x",
        "INSERT INTO t VALUES (9223372036854775807 + 1, DATE '2020-01-01')",
        "UPDATE t SET n = n * 2 WHERE TRUE",
    ] {
        let e = error(&w, &ctx, sql);
        assert!(e.contains("int64 overflow"), "{sql}: {e}");
    }
    assert_eq!(value(&w, &ctx, "SELECT COUNT(*) FROM t"), "1");
    assert_eq!(value(&w, &ctx, "SELECT n FROM t"), "9223372036854775807");
    // In range, the same arithmetic is as before.
    assert_eq!(value(&w, &ctx, "SELECT 2 + 3 * 4 - -(5)"), "19");
    assert_eq!(
        value(&w, &ctx, "SELECT n - 1 + 1 FROM t"),
        "9223372036854775807"
    );
    assert_eq!(
        value(
            &w,
            &ctx,
            "SELECT SUM(x) FROM UNNEST([9223372036854775807, -1, 1]) AS x"
        ),
        "9223372036854775807"
    );
    assert_eq!(value(&w, &ctx, "SELECT SUM(n - n) FROM t"), "0");
}

#[test]
fn dates_out_of_range_are_errors_and_nothing_is_stored() {
    let (_dir, w, ctx) = warehouse();
    w.execute(
        "CREATE TABLE t (d DATE, ts TIMESTAMP); INSERT INTO t VALUES (DATE '2020-01-01', TIMESTAMP '2020-01-01')",
        &ctx,
    )
    .unwrap();
    for sql in [
        "SELECT DATE_ADD(DATE '9999-12-31', INTERVAL 1 DAY)",
        "SELECT DATE_SUB(DATE '0001-01-01', INTERVAL 1 DAY)",
        "SELECT DATE_ADD(DATE '9999-12-01', INTERVAL 1 MONTH)",
        "SELECT TIMESTAMP_ADD(TIMESTAMP '9999-12-31 23:59:59', INTERVAL 1 SECOND)",
        "SELECT DATETIME_ADD(DATETIME '9999-12-31 23:59:59', INTERVAL 1 HOUR)",
        "SELECT DATE '9999-12-31' + INTERVAL 1 DAY",
        "INSERT INTO t (d) VALUES (DATE_ADD(DATE '9999-12-31', INTERVAL 1 DAY))",
        "INSERT INTO t (d) VALUES (DATE '9999-12-31' + INTERVAL 1 DAY)",
        "UPDATE t SET ts = TIMESTAMP '9999-12-31 23:00:00' + INTERVAL 2 HOUR WHERE TRUE",
    ] {
        let e = error(&w, &ctx, sql);
        assert!(e.contains("out of range"), "{sql}: {e}");
    }
    assert_eq!(value(&w, &ctx, "SELECT COUNT(*) FROM t"), "1");
    assert_eq!(
        value(
            &w,
            &ctx,
            "SELECT DATE_ADD(DATE '9999-12-30', INTERVAL 1 DAY)"
        ),
        "9999-12-31"
    );
}

#[test]
fn huge_intervals_and_odd_time_zones_are_errors_not_panics() {
    let (_dir, w, ctx) = warehouse();
    for part in ["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"] {
        for n in [
            "9223372036854775807",
            "-9223372036854775807",
            "4294967296",
            "106751991167",
        ] {
            for f in ["DATE_ADD(DATE '2020-01-01'", "DATE_SUB(DATE '2020-01-01'"] {
                let sql = format!("SELECT {f}, INTERVAL {n} {part})");
                let e = error(&w, &ctx, &sql);
                assert!(e.contains("out of range"), "{sql}: {e}");
            }
            for f in [
                "TIMESTAMP_ADD(TIMESTAMP '2020-01-01'",
                "DATETIME_ADD(DATETIME '2020-01-01 00:00:00'",
                "TIMESTAMP_SUB(TIMESTAMP '2020-01-01'",
            ] {
                let sql = format!("SELECT {f}, INTERVAL {n} {part})");
                let e = error(&w, &ctx, &sql);
                assert!(e.contains("out of range"), "{sql}: {e}");
            }
        }
    }
    let e = error(
        &w,
        &ctx,
        "SELECT DATE_SUB(DATE '2020-01-01', INTERVAL -9223372036854775808 DAY)",
    );
    assert!(e.contains("overflow") || e.contains("out of range"), "{e}");
    for zone in [
        "é", "日本", "+日", "-", "+", "UTC+", "+1:日", "UTC+99", "", "+-5",
    ] {
        for sql in [
            format!("SELECT DATE(TIMESTAMP '2020-01-01', '{zone}')"),
            format!("SELECT FORMAT_TIMESTAMP('%F', TIMESTAMP '2020-01-01', '{zone}')"),
            format!("SELECT DATETIME(TIMESTAMP '2020-01-01', '{zone}')"),
            format!("SELECT TIMESTAMP(DATETIME '2020-01-01 00:00:00', '{zone}')"),
            format!("SELECT PARSE_TIMESTAMP('%F', '2020-01-01', '{zone}')"),
        ] {
            let e = error(&w, &ctx, &sql);
            assert!(e.contains("time zone"), "{sql}: {e}");
        }
    }
    assert_eq!(
        value(
            &w,
            &ctx,
            "SELECT FORMAT_TIMESTAMP('%F %H', TIMESTAMP '2020-01-01', '+05:30')"
        ),
        "2020-01-01 05"
    );
}

#[test]
fn deep_expressions_and_many_unions_are_refused_with_the_limit() {
    let (_dir, w, ctx) = warehouse();
    let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
    let e = error(&w, &ctx, &chain(5_000));
    assert!(e.contains("nests more than 1000 levels"), "{e}");
    assert_eq!(value(&w, &ctx, &chain(900)), "900");
    let unions = |n: usize| vec!["SELECT 1 AS x"; n + 1].join(" UNION ALL ");
    let e = error(&w, &ctx, &unions(3_000));
    assert!(
        e.contains("3000 set operations") && e.contains("at most 1000"),
        "{e}"
    );
    let e = error(
        &w,
        &ctx,
        &format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300)),
    );
    assert!(e.contains("recursion limit"), "{e}");
    assert_eq!(
        value(&w, &ctx, &format!("SELECT COUNT(*) FROM ({})", unions(200))),
        "201"
    );
}

#[test]
fn huge_strings_are_refused_with_the_limit() {
    let (_dir, w, ctx) = warehouse();
    for sql in [
        "SELECT REPEAT('x', 2000000000)",
        "SELECT LPAD('a', 2147483647)",
        "SELECT RPAD('a', 2147483647, 'é')",
        "SELECT LENGTH(REPEAT(REPEAT('ab', 5000000), 5000000))",
        "SELECT REPLACE(REPEAT('a', 10000), 'a', REPEAT('b', 10000))",
        "SELECT REPEAT(s, 1000000) FROM UNNEST(['', 'abcdefghijk']) AS s",
    ] {
        let e = error(&w, &ctx, sql);
        assert!(e.contains("10485760 bytes"), "{sql}: {e}");
    }
    for sql in [
        "SELECT RPAD('x', (-9223372036854775807 - 1), NULL)",
        "SELECT LPAD(CAST(NULL AS STRING), -1)",
        "SELECT REPEAT('x', -2)",
    ] {
        let e = error(&w, &ctx, sql);
        assert!(e.contains("is negative"), "{sql}: {e}");
    }
    let e = error(
        &w,
        &ctx,
        "SELECT MAX(LPAD(CAST(x AS STRING), 5000000)) FROM UNNEST(GENERATE_SERIES(1, 100)) AS x",
    );
    assert!(e.contains("268435456 bytes"), "{e}");
    assert_eq!(value(&w, &ctx, "SELECT LENGTH(REPEAT('ab', 1000))"), "2000");
    assert_eq!(value(&w, &ctx, "SELECT LPAD('7', 3, '0')"), "007");
    assert_eq!(value(&w, &ctx, "SELECT REPLACE('aXa', 'a', 'bb')"), "bbXbb");
}

#[test]
fn endless_recursion_stops_at_500_iterations() {
    let (_dir, w, ctx) = warehouse();
    let e = error(
        &w,
        &ctx,
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT MAX(n) FROM r",
    );
    assert!(
        e.contains("recursive query `r`") && e.contains("500 iterations"),
        "{e}"
    );
    // 500 iterations that produce rows, then one that finds nothing: allowed.
    assert_eq!(
        value(
            &w,
            &ctx,
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n <= 500) SELECT MAX(n) FROM r"
        ),
        "501"
    );
    // The count starts again for each run of the query.
    for _ in 0..2 {
        assert_eq!(
            value(
                &w,
                &ctx,
                "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 400) SELECT COUNT(*) FROM r"
            ),
            "400"
        );
    }
}

#[test]
fn long_chains_of_ctes_and_joins_answer() {
    let (_dir, w, ctx) = warehouse();
    for n in [50usize, 100] {
        let ctes: Vec<String> = (1..=n)
            .map(|i| format!("a{i} AS (SELECT x + 1 AS x FROM a{})", i - 1))
            .collect();
        let sql = format!(
            "WITH a0 AS (SELECT 0 AS x), {} SELECT x FROM a{n}",
            ctes.join(", ")
        );
        match w.execute(&sql, &ctx) {
            Ok(r) => {
                let b = &r.batches[0];
                let v = arrow::util::display::array_value_to_string(b.column(0), 0).unwrap();
                assert_eq!(v, n.to_string());
            }
            Err(e) => assert!(e.to_string().contains("at most"), "{n} CTEs: {e}"),
        }
        let joins: Vec<String> = (1..=n)
            .map(|i| format!("JOIN (SELECT 1 AS k) AS j{i} ON j{i}.k = j0.k"))
            .collect();
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 AS k) AS j0 {}",
            joins.join(" ")
        );
        match w.execute(&sql, &ctx) {
            Ok(r) => {
                let b = &r.batches[0];
                let v = arrow::util::display::array_value_to_string(b.column(0), 0).unwrap();
                assert_eq!(v, "1");
            }
            Err(e) => assert!(e.to_string().contains("at most"), "{n} joins: {e}"),
        }
    }
}

#[test]
fn too_many_joins_are_refused_quickly() {
    let (_dir, w, ctx) = warehouse();
    let joins: Vec<String> = (1..=150)
        .map(|i| format!("JOIN (SELECT 1 AS k) AS j{i} ON j{i}.k = j0.k"))
        .collect();
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 AS k) AS j0 {}",
        joins.join(" ")
    );
    let e = w.execute(&sql, &ctx).unwrap_err().to_string();
    assert!(
        e.contains("the statement has 150 joins; the local warehouse plans at most 100"),
        "{e}"
    );
}
