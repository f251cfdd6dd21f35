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
//!   when set. With `BIGFLOW_CONFORMANCE_PEER=bqemulator` the same cases
//!   also run on bqemulator (BigQuery's REST API, `conformance/peer.rs`), at
//!   the same time, and the table shows both side by side; an error of the
//!   peer counts as unsupported unless the case expects an error.
//!   `BIGFLOW_CONFORMANCE_FILES=a.test,b.test` runs only those files.

#[path = "conformance/compare.rs"]
mod compare;
#[path = "conformance/format.rs"]
mod format;
#[path = "conformance/peer.rs"]
mod peer;
#[path = "conformance/runner.rs"]
mod runner;

use std::collections::BTreeSet;

use runner::{
    FileResult, Outcome, Target, data_dir, markdown, markdown_pair, run_file, test_files,
};

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

/// Each case that did not pass, one line each; `who` prefixes a peer's.
fn print_details(results: &[FileResult], who: &str) {
    for r in results {
        for c in &r.cases {
            match &c.outcome {
                Outcome::Pass => {}
                Outcome::Unsupported(why) => {
                    println!("{who}UNSUPPORTED {}:{}: {why}", r.file, c.name)
                }
                Outcome::Wrong(why) => println!("{who}WRONG {}:{}: {why}", r.file, c.name),
                Outcome::Skipped(why) => println!("{who}SKIPPED {}:{}: {why}", r.file, c.name),
            }
        }
    }
}

#[test]
fn subset() {
    let Some(dir) = data() else { return };
    let started = std::time::Instant::now();
    let results: Vec<FileResult> = SUBSET
        .iter()
        .map(|f| run_file(&dir.join(f), Target::Local))
        .collect();
    print_details(&results, "");
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
    let mut files = test_files(&dir);
    if let Ok(only) = std::env::var("BIGFLOW_CONFORMANCE_FILES") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        files.retain(|f| only.iter().any(|o| f.ends_with(o)));
    }
    let peer = match std::env::var("BIGFLOW_CONFORMANCE_PEER").as_deref() {
        Ok("bqemulator") => peer::Peer::start().map(std::sync::Arc::new),
        Ok("") | Err(_) => None,
        Ok(other) => panic!("BIGFLOW_CONFORMANCE_PEER={other}: the peer is `bqemulator`"),
    };
    // The peer mostly waits for its server: both run at once.
    let (results, peer_results) = std::thread::scope(|s| {
        let peer_run = peer.as_ref().map(|p| {
            let files = &files;
            s.spawn(move || {
                compare::set_empty_array_is_null(true);
                let started = std::time::Instant::now();
                let r: Vec<FileResult> =
                    files.iter().map(|f| run_file(f, Target::Peer(p))).collect();
                println!("bqemulator run in {:.1?}", started.elapsed());
                r
            })
        });
        let ours: Vec<FileResult> = files.iter().map(|f| run_file(f, Target::Local)).collect();
        println!("local run in {:.1?}", started.elapsed());
        (ours, peer_run.map(|h| h.join().expect("the peer's run")))
    });
    if let Some(p) = &peer {
        p.stop();
    }
    print_details(&results, "");
    let table = match &peer_results {
        Some(p) => {
            print_details(p, "bqemulator ");
            markdown_pair(&results, p, "bqemulator")
        }
        None => markdown(&results),
    };
    println!("{table}");
    println!("full run in {:.1?}", started.elapsed());
    if let Some(path) = std::env::var_os("BIGFLOW_CONFORMANCE_REPORT") {
        std::fs::write(&path, &table).expect("writing the report");
    }
}
