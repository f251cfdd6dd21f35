//! GoogleSQL's conformance suite on the local warehouse (issue 17).
//!
//! The `.test` files of `google/zetasql` (`zetasql/compliance/testdata/`) are
//! read from `$BIGFLOW_CONFORMANCE_DIR`, default `../shared/zetasql-compliance`
//! next to the repository. Each case is classified pass / unsupported /
//! wrong / skipped (see `conformance/runner.rs`).
//!
//! - `every_file` (plain `cargo test`, so `scripts/test`; about a minute
//!   in a debug build): every file; fails on any wrong answer, and when
//!   fewer cases pass than [`MIN_PASS`].
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

use runner::{
    FileResult, Outcome, Target, data_dir, markdown, markdown_pair, run_file, test_files,
};

/// Passing cases of the whole suite on 2026-11-27: a change that turns
/// passing cases into refusals fails `every_file` (raise it as cases pass).
const MIN_PASS: usize = 1716;

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
fn every_file() {
    let Some(dir) = data() else { return };
    let started = std::time::Instant::now();
    let results: Vec<FileResult> = test_files(&dir)
        .iter()
        .map(|f| run_file(f, Target::Local))
        .collect();
    print_details(&results, "");
    println!("{}", markdown(&results));
    println!("every file ran in {:.1?}", started.elapsed());
    let mut wrong = Vec::new();
    let mut passed = 0;
    for r in &results {
        for c in &r.cases {
            match &c.outcome {
                Outcome::Wrong(why) => wrong.push(format!("{}:{}: {why}", r.file, c.name)),
                Outcome::Pass => passed += 1,
                _ => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers (a result or error other than BigQuery's):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        passed >= MIN_PASS,
        "{passed} cases pass, fewer than the {MIN_PASS} that passed before: see the UNSUPPORTED lines above"
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
