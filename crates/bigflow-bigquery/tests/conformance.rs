//! GoogleSQL's conformance suite on the local warehouse (issue 17).
//!
//! The `.test` files of `google/zetasql` (`zetasql/compliance/testdata/`) are
//! read from `$BIGFLOW_CONFORMANCE_DIR`, default `../shared/zetasql-compliance`
//! next to the repository. Each case is classified pass / unsupported /
//! wrong / skipped (see `conformance/runner.rs`).
//!
//! - `subset` (plain `cargo test`): a few files; fails on any wrong answer
//!   not pinned in `conformance/known_wrong.txt`, and on a pinned one that
//!   now passes (so the list only shrinks).
//! - `full` (ignored; `bench/conformance.sh` runs it): every file, printing
//!   the per-file Markdown table, written to `$BIGFLOW_CONFORMANCE_REPORT`
//!   when set.

#[path = "conformance/compare.rs"]
mod compare;
#[path = "conformance/format.rs"]
mod format;
#[path = "conformance/runner.rs"]
mod runner;

use std::collections::BTreeSet;

use runner::{FileResult, Outcome, data_dir, markdown, run_file, test_files};

/// The files `scripts/test` runs (bounded: well under 2 minutes).
const SUBSET: &[&str] = &[
    "arithmetic_functions.test",
    "case_statement_queries.test",
    "cast_function.test",
    "concat_function.test",
    "dml_delete.test",
    "having_queries.test",
    "limit_queries.test",
    "logical_functions.test",
    "orderby_queries.test",
    "qualify.test",
    "regexp_functions.test",
    "select_distinct.test",
    "strings.test",
    "with_queries.test",
];

/// The data, or `None` after the missing-peer rule (loud skip; a failure
/// under `BIGFLOW_REQUIRE_PEERS=1`).
fn data() -> Option<std::path::PathBuf> {
    let dir = data_dir();
    let missing = if test_files(&dir).is_empty() {
        vec![format!(
            "GoogleSQL conformance tests in {} (set BIGFLOW_CONFORMANCE_DIR)",
            dir.display()
        )]
    } else {
        Vec::new()
    };
    bigflow_testkit::peers_present(&missing).then_some(dir)
}

fn print_details(results: &[FileResult]) {
    for r in results {
        for c in &r.cases {
            match &c.outcome {
                Outcome::Pass => {}
                Outcome::Unsupported(why) => println!("UNSUPPORTED {}:{}: {why}", r.file, c.name),
                Outcome::Wrong(why) => println!("WRONG {}:{}: {why}", r.file, c.name),
                Outcome::Skipped(why) => println!("SKIPPED {}:{}: {why}", r.file, c.name),
            }
        }
    }
}

#[test]
fn subset() {
    let Some(dir) = data() else { return };
    let started = std::time::Instant::now();
    let results: Vec<FileResult> = SUBSET.iter().map(|f| run_file(&dir.join(f))).collect();
    print_details(&results);
    println!("{}", markdown(&results));
    println!("subset ran in {:.1?}", started.elapsed());
    let known: BTreeSet<String> = include_str!("conformance/known_wrong.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut new_wrong = Vec::new();
    let mut now_right = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &results {
        for c in &r.cases {
            let key = format!("{}:{}", r.file, c.name);
            let wrong = matches!(c.outcome, Outcome::Wrong(_));
            if known.contains(&key) {
                seen.insert(key.clone());
                if !wrong {
                    now_right.push(key);
                }
            } else if wrong {
                new_wrong.push(format!("{key}: {:?}", c.outcome));
            }
        }
    }
    assert!(
        new_wrong.is_empty(),
        "wrong answers not in conformance/known_wrong.txt:\n{}",
        new_wrong.join("\n")
    );
    assert!(
        now_right.is_empty(),
        "no longer wrong, remove from conformance/known_wrong.txt:\n{}",
        now_right.join("\n")
    );
}

#[test]
#[ignore = "the full suite; run by bench/conformance.sh"]
fn full() {
    let Some(dir) = data() else { return };
    let started = std::time::Instant::now();
    let results: Vec<FileResult> = test_files(&dir).iter().map(|f| run_file(f)).collect();
    print_details(&results);
    let table = markdown(&results);
    println!("{table}");
    println!("full run in {:.1?}", started.elapsed());
    if let Some(path) = std::env::var_os("BIGFLOW_CONFORMANCE_REPORT") {
        std::fs::write(&path, &table).expect("writing the report");
    }
}
