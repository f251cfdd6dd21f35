//! The local warehouse's hostile-SQL suite: statements generated from a
//! small grammar of the supported functions and operators, with extreme
//! literals (INT64 limits, huge intervals, the first and last dates, odd and
//! non-ASCII time zones, empty and huge strings, NULLs, deep nesting, many
//! UNIONs, endless recursion), run against a warehouse holding two small
//! tables.
//!
//! Oracle: every statement returns a result or an error — never a panic
//! (each case runs under `catch_unwind`), never a hang (each case has
//! [`CASE_LIMIT`]) — and a statement that fails leaves every table's rows
//! as they were.
//!
//! Deterministic by default (proptest's fixed-seed runner);
//! `BIGFLOW_FUZZ_CASES` sets the number of cases (default 300) and
//! `PROPTEST_RNG_SEED` another seed. The test prints how many cases ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use bigflow_bigquery::{Backend, LocalWarehouse, QueryContext, TableId, WriteMode};
use proptest::prelude::*;

/// Longest one case may take; generous for a loaded 2-core debug build.
const CASE_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The grammar

/// A small deterministic random source (xorshift64*), seeded by proptest.
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// One time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn int(&mut self, depth: u32) -> String {
        if depth == 0 || self.one_in(3) {
            return self
                .pick(&[
                    "0",
                    "1",
                    "-1",
                    "7",
                    "9223372036854775807",
                    "-9223372036854775807",
                    "(-9223372036854775807 - 1)",
                    "2147483647",
                    "4294967296",
                    "106751991167",
                    "NULL",
                    "CAST(NULL AS INT64)",
                    "id",
                    "n",
                ])
                .to_string();
        }
        let d = depth - 1;
        match self.below(16) {
            0 => format!("({} + {})", self.int(d), self.int(d)),
            1 => format!("({} - {})", self.int(d), self.int(d)),
            2 => format!("({} * {})", self.int(d), self.int(d)),
            3 => format!("-({})", self.int(d)),
            4 => format!("MOD({}, {})", self.int(d), self.int(d)),
            5 => format!("ABS({})", self.int(d)),
            6 => format!("LENGTH({})", self.string(d)),
            7 => format!(
                "DATE_DIFF({}, {}, {})",
                self.date(d),
                self.date(d),
                self.date_part()
            ),
            8 => format!(
                "TIMESTAMP_DIFF({}, {}, {})",
                self.timestamp(d),
                self.timestamp(d),
                self.pick(&["MICROSECOND", "SECOND", "HOUR", "DAY"])
            ),
            9 => format!("SAFE_CAST({} AS INT64)", self.string(d)),
            10 => format!("CAST({} AS INT64)", self.string(d)),
            11 => format!("IF({}, {}, {})", self.boolean(d), self.int(d), self.int(d)),
            12 => format!("COALESCE({}, {})", self.int(d), self.int(d)),
            13 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.boolean(d),
                self.int(d),
                self.int(d)
            ),
            14 => format!("EXTRACT(YEAR FROM {})", self.date(d)),
            _ => format!("(SELECT MAX(k) FROM u WHERE k < {})", self.int(d)),
        }
    }

    fn string(&mut self, depth: u32) -> String {
        if depth == 0 || self.one_in(3) {
            return match self.below(10) {
                0 => format!("'{}'", "x".repeat(20_000)),
                _ => self
                    .pick(&[
                        "''",
                        "'a'",
                        "'é日本'",
                        "'%F %H:%M'",
                        "'2020-02-29'",
                        "'9999-12-31 23:59:59'",
                        "NULL",
                        "name",
                    ])
                    .to_string(),
            };
        }
        let d = depth - 1;
        match self.below(15) {
            0 => format!("CONCAT({}, {})", self.string(d), self.string(d)),
            1 => format!("({} || {})", self.string(d), self.string(d)),
            2 => format!("REPEAT({}, {})", self.string(d), self.int(d)),
            3 => format!("LPAD({}, {})", self.string(d), self.int(d)),
            4 => format!(
                "RPAD({}, {}, {})",
                self.string(d),
                self.int(d),
                self.string(d)
            ),
            5 => format!(
                "REPLACE({}, {}, {})",
                self.string(d),
                self.string(d),
                self.string(d)
            ),
            6 => format!("UPPER({})", self.string(d)),
            7 => format!(
                "SUBSTR({}, {}, {})",
                self.string(d),
                self.int(d),
                self.int(d)
            ),
            8 => format!("FORMAT_DATE({}, {})", self.string(d), self.date(d)),
            9 => format!(
                "FORMAT_TIMESTAMP({}, {}, {})",
                self.string(d),
                self.timestamp(d),
                self.zone()
            ),
            10 => format!(
                "FORMAT_TIMESTAMP({}, {})",
                self.string(d),
                self.timestamp(d)
            ),
            11 => format!("CAST({} AS STRING)", self.int(d)),
            12 => format!(
                "REGEXP_REPLACE({}, 'a', {})",
                self.string(d),
                self.string(d)
            ),
            13 => format!("TRIM({})", self.string(d)),
            _ => format!("IFNULL({}, {})", self.string(d), self.string(d)),
        }
    }

    fn date_part(&mut self) -> &'static str {
        self.pick(&["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"])
    }

    fn interval(&mut self, depth: u32, parts: &[&'static str]) -> String {
        let n = if self.one_in(2) {
            self.pick(&[
                "1",
                "-1",
                "9223372036854775807",
                "-9223372036854775807",
                "4294967296",
                "106751991167",
                "3652059",
                "-3652059",
            ])
            .to_string()
        } else {
            self.int(depth)
        };
        format!("INTERVAL {n} {}", self.pick(parts))
    }

    fn zone(&mut self) -> String {
        self.pick(&[
            "'UTC'",
            "'Europe/Warsaw'",
            "'+05:30'",
            "'-14:00'",
            "'UTC+14'",
            "'é'",
            "'日本'",
            "'+日'",
            "''",
            "'+99:00'",
            "'UTC+'",
            "'-'",
            "'Mars/Olympus'",
            "NULL",
            "name",
        ])
        .to_string()
    }

    fn date(&mut self, depth: u32) -> String {
        if depth == 0 || self.one_in(3) {
            return self
                .pick(&[
                    "DATE '0001-01-01'",
                    "DATE '9999-12-31'",
                    "DATE '2020-02-29'",
                    "NULL",
                    "d",
                ])
                .to_string();
        }
        let d = depth - 1;
        let parts = ["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"];
        match self.below(9) {
            0 => format!("DATE_ADD({}, {})", self.date(d), self.interval(d, &parts)),
            1 => format!("DATE_SUB({}, {})", self.date(d), self.interval(d, &parts)),
            2 => format!("DATE({})", self.timestamp(d)),
            3 => format!("DATE({}, {})", self.timestamp(d), self.zone()),
            4 => format!("DATE_TRUNC({}, MONTH)", self.date(d)),
            5 => format!("PARSE_DATE('%Y-%m-%d', {})", self.string(d)),
            6 => format!("SAFE.PARSE_DATE({}, {})", self.string(d), self.string(d)),
            7 => format!(
                "({} + INTERVAL {} DAY)",
                self.date(d),
                self.pick(&["1", "-1", "3000000", "2147483647"])
            ),
            _ => format!("DATE({}, 2, 29)", self.int(d)),
        }
    }

    fn timestamp(&mut self, depth: u32) -> String {
        if depth == 0 || self.one_in(3) {
            return self
                .pick(&[
                    "TIMESTAMP '0001-01-01 00:00:00+00'",
                    "TIMESTAMP '9999-12-31 23:59:59.999999+00'",
                    "TIMESTAMP '2020-03-29 01:30:00+00'",
                    "NULL",
                    "ts",
                ])
                .to_string();
        }
        let d = depth - 1;
        let parts = [
            "MICROSECOND",
            "SECOND",
            "MINUTE",
            "HOUR",
            "DAY",
            "WEEK",
            "MONTH",
            "YEAR",
        ];
        match self.below(11) {
            0 => format!(
                "TIMESTAMP_ADD({}, {})",
                self.timestamp(d),
                self.interval(d, &parts)
            ),
            1 => format!(
                "TIMESTAMP_SUB({}, {})",
                self.timestamp(d),
                self.interval(d, &parts)
            ),
            2 => format!(
                "TIMESTAMP(DATETIME_ADD(DATETIME({}), {}))",
                self.timestamp(d),
                self.interval(d, &parts)
            ),
            3 => format!("TIMESTAMP({})", self.date(d)),
            4 => format!("TIMESTAMP({}, {})", self.string(d), self.zone()),
            5 => format!("TIMESTAMP_TRUNC({}, DAY)", self.timestamp(d)),
            6 => format!(
                "{}({})",
                self.pick(&["TIMESTAMP_SECONDS", "TIMESTAMP_MILLIS", "TIMESTAMP_MICROS"]),
                self.int(d)
            ),
            7 => format!(
                "PARSE_TIMESTAMP({}, {}, {})",
                self.string(d),
                self.string(d),
                self.zone()
            ),
            8 => format!(
                "TIMESTAMP(DATETIME({}, {}))",
                self.timestamp(d),
                self.zone()
            ),
            9 => format!(
                "({} + INTERVAL {} HOUR)",
                self.timestamp(d),
                self.pick(&["1", "-1", "100000000"])
            ),
            _ => format!(
                "SAFE.PARSE_TIMESTAMP({}, {})",
                self.string(d),
                self.string(d)
            ),
        }
    }

    fn boolean(&mut self, depth: u32) -> String {
        if depth == 0 || self.one_in(4) {
            return self
                .pick(&["TRUE", "FALSE", "NULL", "id > 1", "name IS NULL"])
                .to_string();
        }
        let d = depth - 1;
        match self.below(9) {
            0 => format!("{} = {}", self.int(d), self.int(d)),
            1 => format!("{} < {}", self.date(d), self.date(d)),
            2 => format!("({} AND {})", self.boolean(d), self.boolean(d)),
            3 => format!("NOT ({})", self.boolean(d)),
            4 => format!("{} LIKE 'a%'", self.string(d)),
            5 => format!("REGEXP_CONTAINS({}, 'é+')", self.string(d)),
            6 => format!("{} IN (1, 2, {})", self.int(d), self.int(d)),
            7 => format!("{} >= {}", self.timestamp(d), self.timestamp(d)),
            _ => format!("{} IS NULL", self.string(d)),
        }
    }

    fn any_expr(&mut self, depth: u32) -> String {
        match self.below(5) {
            0 => self.int(depth),
            1 => self.string(depth),
            2 => self.date(depth),
            3 => self.timestamp(depth),
            _ => self.boolean(depth),
        }
    }

    /// Deep or long statements: long chains, many UNIONs, deep parentheses.
    fn deep(&mut self) -> String {
        let n = [10, 900, 1_001, 5_000][self.below(4)];
        match self.below(4) {
            0 => format!(
                "SELECT {} AS c FROM t",
                vec![self.pick(&["1", "id", "n"]); n].join(self.pick(&[" + ", " * ", " - "]))
            ),
            1 => format!(
                "SELECT COUNT(*) FROM t WHERE {}",
                vec!["id > 0"; n].join(self.pick(&[" AND ", " OR "]))
            ),
            2 => vec!["SELECT 1 AS x"; n.min(3_000)].join(" UNION ALL "),
            _ => {
                let k = [10, 40, 300][self.below(3)];
                format!("SELECT {}1{}", "(".repeat(k), ")".repeat(k))
            }
        }
    }

    /// One statement of the grammar.
    fn statement(&mut self) -> Statement {
        let depth = 1 + self.below(4) as u32;
        let sql = match self.below(20) {
            0..=4 => format!(
                "SELECT {} AS a, {} AS b FROM t WHERE {}",
                self.any_expr(depth),
                self.any_expr(depth),
                self.boolean(depth.min(2))
            ),
            5 | 6 => format!("SELECT {} AS a FROM t LIMIT 2", self.any_expr(depth)),
            7 => format!(
                "SELECT {}, COUNT(*) FROM t GROUP BY {}",
                self.pick(&[
                    "SUM(n)",
                    "SUM(id * n)",
                    "MAX(name)",
                    "MIN(d)",
                    "AVG(n)",
                    "STRING_AGG(name, ',')",
                    "SUM(DISTINCT n)"
                ]),
                self.pick(&["id", "name", "d"])
            ),
            8 => format!("SELECT SUM({}) AS s FROM t", self.int(depth)),
            9 => self.deep(),
            10 => format!(
                "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r{}) SELECT MAX(n) FROM r",
                self.pick(&["", " WHERE n < 20", " WHERE n < 600"])
            ),
            11 | 12 => format!(
                "INSERT INTO t (id, name, d, ts, n) VALUES ({}, {}, {}, {}, {})",
                self.int(depth),
                self.string(depth),
                self.date(depth),
                self.timestamp(depth),
                self.int(depth)
            ),
            13 => format!(
                "INSERT INTO t (id, name) SELECT {}, {} FROM t",
                self.int(depth),
                self.string(depth)
            ),
            14 => format!(
                "UPDATE t SET {} WHERE {}",
                match self.below(4) {
                    0 => format!("n = {}", self.int(depth)),
                    1 => format!("name = {}", self.string(depth)),
                    2 => format!("d = {}", self.date(depth)),
                    _ => format!("ts = {}", self.timestamp(depth)),
                },
                self.boolean(depth.min(2))
            ),
            15 => format!("DELETE FROM t WHERE {}", self.boolean(depth)),
            16 => format!(
                "MERGE t USING u ON t.id = u.k \
                 WHEN MATCHED AND {} THEN UPDATE SET n = {} \
                 WHEN NOT MATCHED THEN INSERT (id, name, d) VALUES (u.k, {}, {})",
                self.boolean(1),
                self.int(depth),
                self.string(depth),
                self.date(depth)
            ),
            17 => format!(
                "CREATE OR REPLACE TABLE scratch AS SELECT {} AS c FROM t",
                self.any_expr(depth)
            ),
            _ => {
                return Statement::Write {
                    mode: if self.one_in(2) {
                        WriteMode::Truncate
                    } else {
                        WriteMode::Append
                    },
                    sql: format!(
                        "SELECT {} AS id, {} AS name, {} AS d, {} AS ts, {} AS n FROM t WHERE {}",
                        self.int(depth),
                        self.string(depth),
                        self.date(depth),
                        self.timestamp(depth),
                        self.int(depth),
                        self.boolean(1)
                    ),
                };
            }
        };
        Statement::Sql(sql)
    }
}

/// A generated case.
#[derive(Clone)]
enum Statement {
    /// Run with `execute`.
    Sql(String),
    /// Run with `write_query` into `t`.
    Write { mode: WriteMode, sql: String },
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shorten = |s: &str| {
            if s.len() > 2_000 {
                let cut = (0..=2_000)
                    .rev()
                    .find(|i| s.is_char_boundary(*i))
                    .unwrap_or(0);
                format!("{}… ({} bytes)", &s[..cut], s.len())
            } else {
                s.to_string()
            }
        };
        match self {
            Statement::Sql(s) => write!(f, "{}", shorten(s)),
            Statement::Write { mode, sql } => write!(f, "write_query({mode:?}) {}", shorten(sql)),
        }
    }
}

// ---------------------------------------------------------------------------
// The warehouse and the oracle

const TABLES: [&str; 3] = ["t", "u", "scratch"];

fn ctx() -> QueryContext {
    QueryContext {
        default_project: "p".into(),
        default_dataset: "d".into(),
        ..QueryContext::default()
    }
}

/// The warehouse with `t` and `u` as every case starts (and their copies `t0`, `u0`).
fn set_up(w: &LocalWarehouse) {
    w.execute(
        "CREATE TABLE t (id INT64, name STRING, d DATE, ts TIMESTAMP, n INT64);
         INSERT INTO t VALUES
           (1, 'a', DATE '2020-02-29', TIMESTAMP '2020-03-29 01:30:00+00', 9223372036854775807),
           (2, 'é日本', DATE '0001-01-01', TIMESTAMP '0001-01-01 00:00:00+00', -9223372036854775807),
           (3, NULL, DATE '9999-12-31', TIMESTAMP '9999-12-31 23:59:59.999999+00', 0),
           (NULL, '', NULL, NULL, NULL);
         CREATE TABLE u (k INT64, v STRING);
         INSERT INTO u VALUES (1, 'x'), (4, NULL), (9223372036854775807, 'big');
         CREATE TABLE t0 AS SELECT * FROM t;
         CREATE TABLE u0 AS SELECT * FROM u",
        &ctx(),
    )
    .unwrap();
}

/// Puts `t` and `u` back as they were, and removes `scratch`.
fn reset(w: &LocalWarehouse) {
    w.execute(
        "DELETE FROM t WHERE TRUE; INSERT INTO t SELECT * FROM t0;
         DELETE FROM u WHERE TRUE; INSERT INTO u SELECT * FROM u0;
         DROP TABLE IF EXISTS scratch",
        &ctx(),
    )
    .unwrap();
}

/// Every table's rows, each as text, sorted (`None`: no such table).
fn snapshot(w: &LocalWarehouse) -> Vec<Option<Vec<String>>> {
    TABLES
        .iter()
        .map(|t| {
            let id = TableId::new("p", "d", t).unwrap();
            if !w.table_exists(&id).unwrap() {
                return None;
            }
            let r = w
                .execute(&format!("SELECT * FROM {t}"), &ctx())
                .unwrap_or_else(|e| panic!("reading {t}: {e}"));
            let mut rows = Vec::new();
            for b in &r.batches {
                let options = FormatOptions::default();
                let columns: Vec<ArrayFormatter> = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                    .collect();
                for i in 0..b.num_rows() {
                    let row: Vec<String> = columns.iter().map(|c| c.value(i).to_string()).collect();
                    rows.push(row.join(" | "));
                }
            }
            rows.sort();
            Some(rows)
        })
        .collect()
}

/// Runs one statement; a failure must change nothing. `Ok(true)` when it
/// succeeded and may have changed the tables. With `BIGFLOW_FUZZ_VERBOSE`
/// set, prints each statement and its outcome.
fn check(w: &LocalWarehouse, stmt: &Statement) -> Result<bool, String> {
    let verbose = std::env::var_os("BIGFLOW_FUZZ_VERBOSE").is_some();
    let before = snapshot(w);
    let outcome = match stmt {
        Statement::Sql(sql) => w.execute(sql, &ctx()).map(|_| ()),
        Statement::Write { mode, sql } => {
            let id = TableId::new("p", "d", "t").unwrap();
            w.write_query(&id, None, *mode, sql, &ctx()).map(|_| ())
        }
    };
    if verbose {
        let shown = match &outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let shown: String = shown.chars().take(300).collect();
        eprintln!("{stmt:?}\n  -> {shown}");
    }
    match outcome {
        Ok(()) => Ok(
            !matches!(stmt, Statement::Sql(s) if s.starts_with("SELECT") || s.starts_with("WITH")),
        ),
        Err(e) => {
            let message = e.to_string();
            if message.trim().is_empty() {
                return Err("an error without a message".into());
            }
            let after = snapshot(w);
            if after != before {
                return Err(format!(
                    "the statement failed ({message}) but the tables changed: before {before:?}, after {after:?}"
                ));
            }
            Ok(false)
        }
    }
}

#[test]
fn generated_sql_answers_or_fails_cleanly_and_a_failure_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = Arc::new(LocalWarehouse::open(dir.path()).unwrap());
    set_up(&w);
    // A failing statement is reported as generated; there is nothing to shrink.
    let mut runner = bigflow_testkit::fuzz::runner(300, 0);
    let ran = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let start = Instant::now();
    let result = runner.run(&any::<u64>(), |case_seed| {
        ran.fetch_add(1, Ordering::Relaxed);
        let stmt = Gen::new(case_seed).statement();
        let shown = format!("{stmt:?}");
        let (tx, rx) = std::sync::mpsc::channel();
        let wh = w.clone();
        let s = stmt.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let changed = check(&wh, &s)?;
                if changed {
                    reset(&wh);
                }
                Ok::<bool, String>(changed)
            }));
            let _ = tx.send(outcome);
        });
        match rx.recv_timeout(CASE_LIMIT) {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(wrong))) => {
                failed.fetch_add(1, Ordering::Relaxed);
                Err(TestCaseError::fail(format!("{wrong}\nSQL: {shown}")))
            }
            Ok(Err(_)) => Err(TestCaseError::fail(format!("panicked on {shown}"))),
            Err(_) => Err(TestCaseError::fail(format!(
                "no answer within {CASE_LIMIT:?} on {shown}"
            ))),
        }
    });
    eprintln!(
        "fuzz_sql: {} cases in {:.1} s",
        ran.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz_sql: {e}");
    }
}
