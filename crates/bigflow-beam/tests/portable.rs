//! Pipelines on Beam 2.77's own portable runner (its job service in front of
//! the FnApiRunner), with this crate's SDK harness as the worker.
#![cfg(feature = "portable")]

use bigflow_beam::prelude::*;
use bigflow_testkit::beam::BeamJobService;

fn options(service: &BeamJobService) -> PipelineOptions {
    PipelineOptions::from_args([
        "--runner=PortableRunner".to_string(),
        format!("--job_endpoint={}", service.endpoint()),
        "--environment_type=LOOPBACK".to_string(),
    ])
    .unwrap()
}

fn lines(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut out = bigflow_beam::io::read_lines(&format!("{}/{prefix}*", dir.display())).unwrap();
    out.sort();
    out
}

#[test]
fn word_count_on_beams_runner_equals_the_direct_runners() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b c\nb c\nc\n\nd d d d\n").unwrap();
    let build = |p: &Pipeline, out: &str| {
        p.read_text("Read", input.display().to_string())
            .flat_map("Split", |l: &String| {
                l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .count_per_element("Count")
            .map("Format", |(w, n): &(String, i64)| format!("{w}: {n}"))
            .write_text(
                "Write",
                WriteText::to(dir.path().join(out).display().to_string()).shards(2),
            );
    };
    let p = Pipeline::new(options(&service));
    build(&p, "portable");
    p.run()
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
    let d = Pipeline::new(PipelineOptions::default());
    build(&d, "direct");
    d.run().unwrap();
    let got = lines(dir.path(), "portable");
    assert_eq!(got, vec!["a: 1", "b: 2", "c: 3", "d: 4"]);
    assert_eq!(got, lines(dir.path(), "direct"));
}
