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

// ---- Helpers: one pipeline built twice, run on Beam's runner and on the DirectRunner ----

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bigflow_beam::side::{IterableView, MapView, SingletonView};
use bigflow_beam::{PipelineResult, RunControl};
use serde::{Deserialize, Serialize};

fn s(x: &str) -> String {
    x.to_string()
}

/// The outputs of one pipeline run on both runners.
struct Both {
    dir: tempfile::TempDir,
    portable: PipelineResult,
    direct: PipelineResult,
}

impl Both {
    /// The sorted lines of the files `name*` each run wrote; asserts they are equal.
    fn same(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}-");
        let got = lines(&self.dir.path().join("portable"), &prefix);
        let want = lines(&self.dir.path().join("direct"), &prefix);
        assert_eq!(
            got, want,
            "output '{name}': Beam's runner vs the DirectRunner"
        );
        got
    }
}

/// Builds the pipeline with `build(p, out_dir)` for each runner and runs it.
fn run_both(service: &BeamJobService, build: impl Fn(&Pipeline, &str)) -> Both {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| -> String {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    };
    let p = Pipeline::new(options(service));
    build(&p, &out("portable"));
    let portable = p
        .run()
        .unwrap_or_else(|e| panic!("{e:#}\n--- Beam's log ---\n{}", service.log()));
    let d = Pipeline::new(PipelineOptions::default());
    build(&d, &out("direct"));
    let direct = d.run().unwrap();
    Both {
        dir,
        portable,
        direct,
    }
}

fn write_lines(pc: &PCollection<String>, out: &str, name: &str) {
    pc.write_text(
        &format!("Write{name}"),
        WriteText::to(format!("{out}/{name}")).shards(2),
    );
}

/// The files directly in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---- 1. Side inputs ----

#[derive(Clone, Serialize, Deserialize)]
struct Annotate {
    factor: SingletonView<i64>,
    fallback: SingletonView<String>,
    names: MapView<i64, String>,
    all: IterableView<i64>,
}

impl DoFn for Annotate {
    type In = i64;
    type Out = String;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        let factor = *ctx.side_input(&self.factor)?;
        let fallback = ctx.side_input(&self.fallback)?.clone();
        let all = ctx.side_input(&self.all)?.clone();
        let name = ctx
            .side_input(&self.names)?
            .get(x)
            .cloned()
            .unwrap_or(fallback);
        ctx.emit(format!("{name}={} of {all:?}", x * factor));
        Ok(())
    }
}

#[test]
fn side_inputs_singleton_iterable_map() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let xs = p.create("Xs", vec![1i64, 2, 3]);
        let factor = p
            .create("Factors", vec![4i64, 6])
            .combine_globally("SumFactors", Sum::new())
            .as_singleton("Factor");
        let fallback = p
            .create("NoFallback", Vec::<String>::new())
            .as_singleton_or("Fallback", s("?"));
        let names = p
            .create("Names", vec![(1i64, s("one")), (2, s("two"))])
            .as_map("NamesMap");
        let all = xs.as_iter("All");
        let dofn = Annotate {
            factor: factor.clone(),
            fallback: fallback.clone(),
            names: names.clone(),
            all: all.clone(),
        };
        let scaled = xs.apply_par_do(
            "Annotate",
            ParDo::of(dofn)
                .side_input(&factor)
                .side_input(&fallback)
                .side_input(&names)
                .side_input(&all),
        );
        write_lines(&scaled.main, out, "annotated");
    });
    assert_eq!(
        both.same("annotated"),
        vec![
            "?=30 of [1, 2, 3]",
            "one=10 of [1, 2, 3]",
            "two=20 of [1, 2, 3]"
        ]
    );
}

// ---- 2. CoGroupByKey ----

#[test]
fn co_group_by_key_joins_both_sides() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let emails = p.create(
            "Emails",
            vec![
                (s("amy"), s("amy@x")),
                (s("carl"), s("carl@x")),
                (s("amy"), s("amy@y")),
            ],
        );
        let phones = p.create(
            "Phones",
            vec![(s("amy"), 111i64), (s("amy"), 222), (s("james"), 333)],
        );
        let joined = emails
            .co_group_by_key("Join", &phones)
            .map("Format", |(k, (e, ph))| {
                let (mut e, mut ph) = (e.clone(), ph.clone());
                e.sort();
                ph.sort();
                format!("{k} {e:?} {ph:?}")
            });
        write_lines(&joined, out, "joined");
    });
    assert_eq!(
        both.same("joined"),
        vec![
            r#"amy ["amy@x", "amy@y"] [111, 222]"#,
            r#"carl ["carl@x"] []"#,
            r#"james [] [333]"#,
        ]
    );
}

// ---- 3. Flatten and tagged outputs ----

fn numbers_tag() -> TupleTag<i64> {
    TupleTag::new("numbers")
}

fn short_tag() -> TupleTag<String> {
    TupleTag::new("short")
}

/// Words to the main output, numbers and short words to tagged outputs.
#[derive(Clone, Serialize, Deserialize)]
struct SplitWords;

impl DoFn for SplitWords {
    type In = String;
    type Out = String;
    fn process(&mut self, line: &String, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        for w in line.split_whitespace() {
            if let Ok(n) = w.parse::<i64>() {
                ctx.emit_to(&numbers_tag(), n);
            } else if w.len() < 3 {
                ctx.emit_to(&short_tag(), w.to_string());
            } else {
                ctx.emit(w.to_string());
            }
        }
        Ok(())
    }
}

#[test]
fn flatten_and_tagged_outputs() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let a = p.create("A", vec![s("a1"), s("a2")]);
        let b = p.create("B", vec![s("b1")]);
        let c = p.create("C", vec![s("c1"), s("c2"), s("c3")]);
        let abc = flatten("ABC", &[&a, &b, &c]).unwrap();
        write_lines(&abc, out, "abc");
        let twice = flatten("Twice", &[&a, &b, &a]).unwrap();
        write_lines(&twice, out, "twice");
        let ab = a
            .flatten_with("AB", &[&b])
            .map("Upper", |x| x.to_uppercase());
        write_lines(&ab, out, "ab");
        let lines = p.create("Lines", vec![s("hello 1 a world"), s("2 bye xy"), s("")]);
        let split = lines.apply_par_do(
            "Split",
            ParDo::of(SplitWords)
                .output(&numbers_tag())
                .output(&short_tag()),
        );
        write_lines(&split.main, out, "words");
        let numbers = split
            .get(&numbers_tag())
            .unwrap()
            .map("FormatNumbers", |n| format!("n={n}"));
        write_lines(&numbers, out, "numbers");
        write_lines(&split.get(&short_tag()).unwrap(), out, "short");
    });
    assert_eq!(both.same("abc"), ["a1", "a2", "b1", "c1", "c2", "c3"]);
    assert_eq!(both.same("ab"), ["A1", "A2", "B1"]);
    assert_eq!(both.same("twice"), ["a1", "a1", "a2", "a2", "b1"]);
    assert_eq!(both.same("words"), ["bye", "hello", "world"]);
    assert_eq!(both.same("numbers"), ["n=1", "n=2"]);
    assert_eq!(both.same("short"), ["a", "xy"]);
}

// ---- 4. Windows ----

/// Prefixes each element with its window.
#[derive(Clone, Serialize, Deserialize)]
struct ShowWindow;

impl DoFn for ShowWindow {
    type In = String;
    type Out = String;
    fn process(&mut self, x: &String, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        ctx.emit(format!("{} {x}", ctx.window()));
        Ok(())
    }
}

#[test]
fn fixed_and_sliding_windows() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let raw = p.create(
            "Raw",
            vec![(s("a"), 1i64), (s("a"), 59), (s("a"), 61), (s("b"), 125)],
        );
        let events = raw
            .with_timestamps("Stamp", |(_, t)| seconds(*t))
            .map("Key", |(k, _)| k.clone());
        let fixed = events.window_into("Fixed", WindowFn::fixed_seconds(60));
        let counts = fixed
            .count_per_element("CountFixed")
            .map("FormatCounts", |(k, n)| format!("{k}:{n}"))
            .par_do("ShowCountWindow", ShowWindow);
        write_lines(&counts, out, "fixed_counts");
        let grouped = fixed
            .map("Pair", |w| (w.clone(), 1i64))
            .group_by_key("GroupFixed")
            .map("Len", |(k, v)| format!("{k}:{}", v.len()))
            .par_do("ShowGroupWindow", ShowWindow);
        write_lines(&grouped, out, "fixed_groups");
        let sliding = events
            .window_into("Sliding", WindowFn::sliding_seconds(120, 60))
            .count_per_element("CountSliding")
            .map("FormatSliding", |(k, n)| format!("{k}:{n}"))
            .par_do("ShowSlidingWindow", ShowWindow);
        write_lines(&sliding, out, "sliding");
        let sums = p
            .create("Nums", vec![5i64, 65, 70])
            .with_timestamps("StampNums", |x| seconds(*x))
            .window_into("Minutes", WindowFn::fixed_seconds(60))
            .combine_globally("SumPerMinute", Sum::new())
            .map("FormatSums", |x| x.to_string());
        write_lines(&sums, out, "sums");
    });
    assert_eq!(
        both.same("fixed_counts"),
        [
            "[0, 60000000) a:2",
            "[120000000, 180000000) b:1",
            "[60000000, 120000000) a:1"
        ]
    );
    assert_eq!(
        both.same("fixed_groups"),
        [
            "[0, 60000000) a:2",
            "[120000000, 180000000) b:1",
            "[60000000, 120000000) a:1"
        ]
    );
    assert_eq!(
        both.same("sliding"),
        [
            "[-60000000, 60000000) a:2",
            "[0, 120000000) a:3",
            "[120000000, 240000000) b:1",
            "[60000000, 180000000) a:1",
            "[60000000, 180000000) b:1",
        ]
    );
    assert_eq!(both.same("sums"), ["135", "5"]);
}

// ---- 5. Combiners ----

/// A user accumulator with its own (JSON) coder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stats {
    n: i64,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
}
bigflow_beam::json_coder!(Stats);

/// Count, sum, min and max in one pass.
#[derive(Clone)]
struct Summary;

impl CombineFn for Summary {
    type In = i64;
    type Acc = Stats;
    type Out = String;
    fn create(&self) -> Stats {
        Stats {
            n: 0,
            sum: 0,
            min: None,
            max: None,
        }
    }
    fn add_input(&self, acc: &mut Stats, x: i64) {
        acc.n += 1;
        acc.sum += x;
        acc.min = Some(acc.min.map_or(x, |m| m.min(x)));
        acc.max = Some(acc.max.map_or(x, |m| m.max(x)));
    }
    fn merge(&self, acc: &mut Stats, o: Stats) {
        acc.n += o.n;
        acc.sum += o.sum;
        acc.min = match (acc.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        acc.max = match (acc.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    fn extract(&self, acc: Stats) -> String {
        format!(
            "n={} sum={} min={:?} max={:?}",
            acc.n, acc.sum, acc.min, acc.max
        )
    }
}

#[test]
fn combiners_user_and_built_in() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let kv = p.create(
            "Kv",
            vec![(s("a"), 1i64), (s("b"), 5), (s("a"), 3), (s("a"), 8)],
        );
        let per_key = kv
            .combine_per_key("Summary", Summary)
            .map("FormatSummary", |(k, v)| format!("{k} {v}"));
        write_lines(&per_key, out, "summary");
        let mean = kv
            .combine_per_key("Mean", Mean::new())
            .map("FormatMean", |(k, v)| format!("{k} {v}"));
        write_lines(&mean, out, "mean");
        let top = kv
            .combine_per_key("Top2", Top::largest(2))
            .map("FormatTop", |(k, v)| format!("{k} {v:?}"));
        write_lines(&top, out, "top");
        let max = kv
            .combine_per_key("Max", Max::new())
            .map("FormatMax", |(k, v)| format!("{k} {v}"));
        write_lines(&max, out, "max");
        let xs = p.create("Xs", (1..=100i64).collect());
        let total = xs.combine_globally("Total", Summary);
        write_lines(&total, out, "total");
        let smallest = xs
            .combine_globally("Smallest3", Top::smallest(3))
            .map("FormatSmallest", |v| format!("{v:?}"));
        write_lines(&smallest, out, "smallest");
        let none = p.create("None", Vec::<i64>::new());
        write_lines(
            &none.combine_globally("EmptySummary", Summary),
            out,
            "empty",
        );
        let empty_max = none
            .combine_globally("EmptyMax", Max::new())
            .map("FormatEmptyMax", |v| v.to_string());
        write_lines(&empty_max, out, "empty_max");
    });
    assert_eq!(
        both.same("summary"),
        [
            "a n=3 sum=12 min=Some(1) max=Some(8)",
            "b n=1 sum=5 min=Some(5) max=Some(5)"
        ]
    );
    assert_eq!(both.same("mean"), ["a 4", "b 5"]);
    assert_eq!(both.same("top"), ["a [8, 3]", "b [5]"]);
    assert_eq!(both.same("max"), ["a 8", "b 5"]);
    assert_eq!(
        both.same("total"),
        ["n=100 sum=5050 min=Some(1) max=Some(100)"]
    );
    assert_eq!(both.same("smallest"), ["[1, 2, 3]"]);
    assert_eq!(both.same("empty"), ["n=0 sum=0 min=None max=None"]);
    assert!(both.same("empty_max").is_empty());
}

// ---- 6. Metrics ----

/// Counts lines and words, and the distribution of word lengths.
#[derive(Clone, Serialize, Deserialize)]
struct Measure;

impl DoFn for Measure {
    type In = String;
    type Out = String;
    fn process(&mut self, line: &String, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        ctx.inc_counter("lines", 1);
        for w in line.split_whitespace() {
            ctx.inc_counter("words", 1);
            ctx.update_distribution("word_len", w.len() as i64);
            ctx.emit(w.to_string());
        }
        Ok(())
    }
}

#[test]
fn counters_and_distributions_equal_the_direct_runners() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let both = run_both(&service, |p, out| {
        let lines = p.create(
            "Lines",
            (0..500)
                .map(|i| format!("w{i} {}", "x".repeat(i % 7 + 1)))
                .collect(),
        );
        let words = lines.par_do("Measure", Measure);
        write_lines(&words, out, "words");
    });
    assert_eq!(both.same("words").len(), 1000);
    let (got, want) = (&both.portable.metrics, &both.direct.metrics);
    assert_eq!(got.counter("Measure", "lines"), Some(500));
    assert_eq!(got.counter("Measure", "words"), Some(1000));
    let d = got.distribution("Measure", "word_len").unwrap();
    assert_eq!((d.count, d.min, d.max), (1000, 1, 7));
    assert_eq!(got, want, "metrics: Beam's runner vs the DirectRunner");
}

// ---- 7. A failing DoFn ----

#[derive(Clone, Serialize, Deserialize)]
struct FailOn(i64);

impl DoFn for FailOn {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, i64>) -> anyhow::Result<()> {
        if *x == self.0 {
            anyhow::bail!("cannot handle {x}");
        }
        ctx.emit(*x);
        Ok(())
    }
}

#[test]
fn a_failing_dofn_fails_the_run_naming_transform_element_and_cause() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::new(options(&service));
    p.create("Xs", (0..1000i64).collect())
        .par_do("Check", FailOn(777))
        .map("Format", |x| x.to_string())
        .write_text(
            "Write",
            WriteText::to(dir.path().join("out").display().to_string()).shards(2),
        );
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(
        e.contains("transform 'Check' failed on element 777"),
        "{e}\n{}",
        service.log()
    );
    assert!(e.contains("cannot handle 777"), "{e}");
    // The worker's own words, not the runner's traceback.
    assert!(
        e.contains("ended FAILED: transform 'Check' failed on element 777: cannot handle 777"),
        "{e}"
    );
    assert!(!e.contains("Traceback"), "{e}");
    eprintln!("{e}");
    let finals: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("out"))
        .collect();
    assert!(finals.is_empty(), "final shards exist: {finals:?}");
}

// ---- 8. A deadline ----

#[derive(Clone, Serialize, Deserialize)]
struct Sleepy;

impl DoFn for Sleepy {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, i64>) -> anyhow::Result<()> {
        std::thread::sleep(Duration::from_secs(40));
        ctx.emit(*x);
        Ok(())
    }
}

#[test]
fn a_passed_deadline_cancels_the_run_promptly() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::new(options(&service));
    p.create("Xs", vec![1i64, 2])
        .par_do("Sleep", Sleepy)
        .map("Format", |x| x.to_string())
        .write_text(
            "Write",
            WriteText::to(dir.path().join("out").display().to_string()),
        );
    let started = Instant::now();
    let e = p
        .run_with(RunControl {
            deadline: Some(Instant::now() + Duration::from_secs(3)),
            ..Default::default()
        })
        .expect_err("the deadline passed: the run must fail");
    let text = format!("{e:#}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}: {text}",
        started.elapsed()
    );
    assert!(text.contains("cancel"), "{text}");
    assert!(text.contains("deadline"), "{text}");
    eprintln!("{text} (after {:?})", started.elapsed());
}

// ---- 9. Empty inputs ----

#[test]
fn empty_inputs_write_the_same_empty_shards() {
    let Some(service) = BeamJobService::start() else {
        return;
    };
    let input = tempfile::NamedTempFile::new().unwrap();
    let path: PathBuf = input.path().to_path_buf();
    let both = run_both(&service, |p, out| {
        let grouped = p
            .read_text("Read", path.display().to_string())
            .map("Pair", |l| (l.clone(), 1i64))
            .group_by_key("Group")
            .map("Format", |(k, v)| format!("{k} {}", v.len()));
        write_lines(&grouped, out, "from_file");
        let created = p
            .create("Nothing", Vec::<String>::new())
            .map("Again", |x| x.clone());
        write_lines(&created, out, "created");
    });
    let portable = files(&both.dir.path().join("portable"));
    let direct = files(&both.dir.path().join("direct"));
    assert_eq!(portable, direct);
    assert_eq!(
        direct,
        [
            "created-00000-of-00002",
            "created-00001-of-00002",
            "from_file-00000-of-00002",
            "from_file-00001-of-00002"
        ]
    );
    assert!(both.same("from_file").is_empty());
    assert!(both.same("created").is_empty());
}

// ---- 10. Keys that cannot be grouped ----

#[test]
fn a_group_by_key_on_f64_keys_is_refused_naming_the_transform() {
    for runner in [
        vec!["--runner=DirectRunner".to_string()],
        vec![
            "--runner=PortableRunner".to_string(),
            "--job_endpoint=localhost:1".to_string(),
        ],
    ] {
        let p = Pipeline::new(PipelineOptions::from_args(runner).unwrap());
        p.create("Prices", vec![(1.5f64, 1i64), (1.5, 2)])
            .group_by_key("GroupByPrice");
        let e = format!("{:#}", p.run().unwrap_err());
        assert!(e.contains("transform 'GroupByPrice'"), "{e}");
        assert!(e.contains("not deterministic"), "{e}");
    }
}
