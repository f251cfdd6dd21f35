//! Sources on Beam's runner are split into parts that a Reshuffle spreads
//! over workers; what they read equals the DirectRunner's.
#![cfg(feature = "portable")]

use bigflow_beam::prelude::*;
use bigflow_testkit::beam::BeamJobService;

fn run_both(build: impl Fn(&Pipeline, &str)) -> (Vec<String>, Vec<String>) {
    let Some(service) = BeamJobService::start() else {
        return (Vec::new(), Vec::new());
    };
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let portable = Pipeline::new(
        PipelineOptions::from_args([
            "--runner=PortableRunner".to_string(),
            format!("--job_endpoint={}", service.endpoint()),
        ])
        .unwrap(),
    );
    build(&portable, &out("portable"));
    portable
        .run()
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
    let direct = Pipeline::new(PipelineOptions::default());
    build(&direct, &out("direct"));
    direct.run().unwrap();
    let read = |p: &str| {
        let mut v = bigflow_beam::io::read_lines(&format!("{p}*")).unwrap();
        v.sort();
        v
    };
    (read(&out("portable")), read(&out("direct")))
}

#[test]
fn a_large_text_file_is_read_in_byte_ranges_with_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    // About 3 MB: several byte ranges, lines crossing their boundaries.
    let text: String = (0..200_000)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 17)))
        .collect();
    std::fs::write(&input, text).unwrap();
    let pattern = input.display().to_string();
    let (portable, direct) = run_both(|p, out| {
        p.read_text("Read", pattern.clone())
            .map("Len", |l: &String| (l.len() as i64 % 5, 1i64))
            .combine_per_key("Sum", bigflow_beam::Sum::new())
            .map("Format", |(k, n): &(i64, i64)| format!("{k}: {n}"))
            .write_text("Write", WriteText::to(out));
    });
    assert_eq!(portable, direct);
    let total: i64 = portable
        .iter()
        .map(|l| l.split(": ").nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 200_000, "every line read exactly once");
}

#[test]
fn create_is_split_into_parts_of_a_thousand_values() {
    let (portable, direct) = run_both(|p, out| {
        p.create("Numbers", (0..2_500i64).collect())
            .map("Format", |n: &i64| n.to_string())
            .write_text("Write", WriteText::to(out).shards(2));
    });
    assert_eq!(portable.len(), 2_500);
    assert_eq!(portable, direct);
}
