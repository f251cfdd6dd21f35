//! Every transform, checked with `assert_that` on the DirectRunner.

use std::collections::HashMap;

use bigflow_beam::prelude::*;
use bigflow_beam::side::{IterableView, MapView, SingletonView};
use bigflow_beam::{DirectRunner, PipelineRunner, RunControl};
use serde::{Deserialize, Serialize};

fn s(x: &str) -> String {
    x.to_string()
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn create_map_flat_map_filter() {
    let p = TestPipeline::new();
    let lines = p.create("Lines", strings(&["a b", "c", ""]));
    let words = lines.flat_map("Split", |l: &String| {
        l.split_whitespace().map(String::from).collect::<Vec<_>>()
    });
    let upper = words.map("Upper", |w| w.to_uppercase());
    let no_b = upper.filter("NoB", |w| w != "B");
    assert_that(&words, equal_to(strings(&["a", "b", "c"])));
    assert_that(&no_b, equal_to(strings(&["A", "C"])));
    p.run().unwrap();
}

#[test]
fn failed_assertion_names_missing_and_unexpected() {
    let p = TestPipeline::new();
    let xs = p.create("Xs", vec![1i64, 2, 3]);
    assert_that(&xs, equal_to(vec![1, 2, 4]));
    let e = p.run().unwrap_err().to_string();
    assert!(e.contains("assert_that(Xs) failed"), "{e}");
    assert!(
        e.contains("missing: [4]") && e.contains("unexpected: [3]"),
        "{e}"
    );
}

#[test]
fn group_by_key_and_co_group_by_key() {
    let p = TestPipeline::new();
    let kv = p.create("Kv", vec![(s("a"), 1i64), (s("b"), 2), (s("a"), 3)]);
    let grouped = kv.group_by_key("Group");
    assert_that(
        &grouped,
        equal_to(vec![(s("a"), vec![1, 3]), (s("b"), vec![2])]),
    );
    let emails = p.create(
        "Emails",
        vec![(s("amy"), s("amy@x")), (s("carl"), s("carl@x"))],
    );
    let phones = p.create(
        "Phones",
        vec![(s("amy"), 111i64), (s("amy"), 222), (s("james"), 333)],
    );
    let joined = emails.co_group_by_key("Join", &phones);
    assert_that(
        &joined,
        equal_to(vec![
            (s("amy"), (strings(&["amy@x"]), vec![111, 222])),
            (s("carl"), (strings(&["carl@x"]), vec![])),
            (s("james"), (vec![], vec![333])),
        ]),
    );
    p.run().unwrap();
}

#[test]
fn combiners_per_key_and_globally() {
    let p = TestPipeline::new();
    let kv = p.create(
        "Kv",
        vec![(s("a"), 1i64), (s("b"), 5), (s("a"), 3), (s("a"), 8)],
    );
    assert_that(
        &kv.combine_per_key("Sum", Sum::new()),
        equal_to(vec![(s("a"), 12), (s("b"), 5)]),
    );
    assert_that(
        &kv.combine_per_key("Count", Count::new()),
        equal_to(vec![(s("a"), 3), (s("b"), 1)]),
    );
    assert_that(
        &kv.combine_per_key("Mean", Mean::new()),
        equal_to(vec![(s("a"), 4.0), (s("b"), 5.0)]),
    );
    assert_that(
        &kv.combine_per_key("Min", Min::new()),
        equal_to(vec![(s("a"), 1), (s("b"), 5)]),
    );
    assert_that(
        &kv.combine_per_key("Max", Max::new()),
        equal_to(vec![(s("a"), 8), (s("b"), 5)]),
    );
    assert_that(
        &kv.combine_per_key("Top2", Top::largest(2)),
        equal_to(vec![(s("a"), vec![8, 3]), (s("b"), vec![5])]),
    );
    let xs = p.create("Xs", (1..=100i64).collect());
    assert_that(
        &xs.combine_globally("Total", Sum::new()),
        equal_to(vec![5050]),
    );
    assert_that(&xs.count_globally("N"), equal_to(vec![100]));
    assert_that(
        &xs.combine_globally("Smallest3", Top::smallest(3)),
        equal_to(vec![vec![1, 2, 3]]),
    );
    let none = p.create("None", Vec::<i64>::new());
    assert_that(
        &none.combine_globally("EmptySum", Sum::new()),
        equal_to(vec![0]),
    );
    assert_that(&none.combine_globally("EmptyMax", Max::new()), is_empty());
    let words = p.create("Words", strings(&["x", "y", "x"]));
    assert_that(
        &words.count_per_element("PerElement"),
        equal_to(vec![(s("x"), 2), (s("y"), 1)]),
    );
    p.run().unwrap();
}

/// A user combiner: the longest string.
#[derive(Clone)]
struct Longest;

impl CombineFn for Longest {
    type In = String;
    type Acc = String;
    type Out = String;
    fn create(&self) -> String {
        String::new()
    }
    fn add_input(&self, acc: &mut String, input: String) {
        if input.len() > acc.len() {
            *acc = input;
        }
    }
    fn merge(&self, acc: &mut String, other: String) {
        self.add_input(acc, other)
    }
    fn extract(&self, acc: String) -> String {
        acc
    }
}

#[test]
fn user_combiner() {
    let p = TestPipeline::new();
    let kv = p.create("Kv", vec![(1i64, s("ab")), (1, s("abcd")), (2, s("z"))]);
    assert_that(
        &kv.combine_per_key("Longest", Longest),
        equal_to(vec![(1, s("abcd")), (2, s("z"))]),
    );
    p.run().unwrap();
}

#[test]
fn flatten_and_reshuffle() {
    let p = TestPipeline::new();
    let a = p.create("A", vec![1i64, 2]);
    let b = p.create("B", vec![3i64]);
    let both = flatten("Both", &[&a, &b, &a]).unwrap();
    assert_that(&both, equal_to(vec![1, 1, 2, 2, 3]));
    let shuffled = both.reshuffle("Reshuffle");
    assert_that(&shuffled, equal_to(vec![1, 1, 2, 2, 3]));
    p.run().unwrap();
}

/// Splits lines into words; counts lines and word lengths as metrics;
/// sends numbers to a tagged output; checks the lifecycle order.
#[derive(Clone, Serialize, Deserialize)]
struct SplitWords {
    min_len: usize,
    #[serde(skip)]
    state: Vec<&'static str>,
}

fn numbers_tag() -> TupleTag<i64> {
    TupleTag::new("numbers")
}

impl DoFn for SplitWords {
    type In = String;
    type Out = String;
    fn setup(&mut self) -> anyhow::Result<()> {
        self.state.push("setup");
        Ok(())
    }
    fn start_bundle(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.state.first() == Some(&"setup"),
            "start_bundle before setup"
        );
        self.state.push("start");
        Ok(())
    }
    fn process(&mut self, line: &String, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.state.last() == Some(&"start"),
            "process outside a bundle"
        );
        ctx.inc_counter("lines", 1);
        for w in line.split_whitespace() {
            if let Ok(n) = w.parse::<i64>() {
                ctx.emit_to(&numbers_tag(), n);
            } else if w.len() >= self.min_len {
                ctx.update_distribution("word_len", w.len() as i64);
                ctx.emit(w.to_string());
            }
        }
        Ok(())
    }
    fn finish_bundle(&mut self, _ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        self.state.push("finish");
        self.state.retain(|s| *s == "setup");
        Ok(())
    }
}

#[test]
fn par_do_with_tagged_outputs_and_metrics() {
    let p = TestPipeline::new();
    let lines = p.create("Lines", strings(&["hello 1 a world", "2 bye"]));
    let out = lines.apply_par_do(
        "Split",
        ParDo::of(SplitWords {
            min_len: 2,
            state: Vec::new(),
        })
        .output(&numbers_tag()),
    );
    assert_that(&out.main, equal_to(strings(&["hello", "world", "bye"])));
    assert_that(&out.get(&numbers_tag()).unwrap(), equal_to(vec![1, 2]));
    let plan = p.plan();
    let split = plan["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "Split")
        .unwrap();
    assert_eq!(split["spec"]["params"]["min_len"], 2);
    assert!(
        split["spec"]["dofn"]
            .as_str()
            .unwrap()
            .ends_with("SplitWords")
    );
    let r = p.run().unwrap();
    assert_eq!(r.metrics.counter("Split", "lines"), Some(2));
    let d = r.metrics.distribution("Split", "word_len").unwrap();
    assert_eq!((d.count, d.min, d.max), (3, 3, 5));
}

#[derive(Clone, Serialize, Deserialize)]
struct ScaleBy {
    factor: SingletonView<i64>,
    names: MapView<i64, String>,
    all: IterableView<i64>,
}

impl DoFn for ScaleBy {
    type In = i64;
    type Out = String;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, String>) -> anyhow::Result<()> {
        let factor = *ctx.side_input(&self.factor)?;
        let all = ctx.side_input(&self.all)?.len();
        let name = ctx
            .side_input(&self.names)?
            .get(x)
            .cloned()
            .unwrap_or_else(|| "?".into());
        ctx.emit(format!("{name}={} of {all}", x * factor));
        Ok(())
    }
}

#[test]
fn side_inputs_singleton_iterable_map() {
    let p = TestPipeline::new();
    let xs = p.create("Xs", vec![1i64, 2, 3]);
    // The singleton is computed by a combine, so the runner must finish that
    // shuffle before the transform reading it starts.
    let factor = p
        .create("Factors", vec![4i64, 6])
        .combine_globally("SumFactors", Sum::new())
        .as_singleton("Factor");
    let names = p
        .create("Names", vec![(1i64, s("one")), (2, s("two"))])
        .as_map("NamesMap");
    let all = xs.as_iter("All");
    let dofn = ScaleBy {
        factor: factor.clone(),
        names: names.clone(),
        all: all.clone(),
    };
    let scaled = xs.apply_par_do(
        "Scale",
        ParDo::of(dofn)
            .side_input(&factor)
            .side_input(&names)
            .side_input(&all),
    );
    assert_that(
        &scaled.main,
        equal_to(strings(&["one=10 of 3", "two=20 of 3", "?=30 of 3"])),
    );
    p.run().unwrap();
}

#[test]
fn singleton_side_input_with_two_elements_fails_clearly() {
    let p = TestPipeline::new();
    let two = p.create("Two", vec![1i64, 2]).as_singleton("One");
    let dofn = ScaleBy {
        factor: two.clone(),
        names: p.create("N", Vec::<(i64, String)>::new()).as_map("M"),
        all: p.create("E", Vec::<i64>::new()).as_iter("I"),
    };
    let (m, i) = (dofn.names.clone(), dofn.all.clone());
    p.create("Xs", vec![1i64]).apply_par_do(
        "Scale",
        ParDo::of(dofn)
            .side_input(&two)
            .side_input(&m)
            .side_input(&i),
    );
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("side input 'One' must hold exactly one element"),
        "{e}"
    );
}

#[test]
fn fixed_and_sliding_windows() {
    let p = TestPipeline::new();
    let events = p.create_timestamped(
        "Events",
        vec![
            (s("a"), seconds(1)),
            (s("a"), seconds(59)),
            (s("a"), seconds(61)),
            (s("b"), seconds(125)),
        ],
    );
    let fixed = events.window_into("Fixed", WindowFn::fixed_seconds(60));
    let counts = fixed.count_per_element("CountFixed");
    assert_that(
        &counts,
        equal_to(vec![(s("a"), 2), (s("a"), 1), (s("b"), 1)]),
    );
    let with_window = fixed
        .map("Pair", |w| (w.clone(), 1i64))
        .group_by_key("GroupFixed")
        .map("Len", |(k, v)| format!("{k}:{}", v.len()));
    assert_that(&with_window, equal_to(strings(&["a:2", "a:1", "b:1"])));
    // Sliding 120 s every 60 s: every event is in two windows.
    let sliding = events
        .window_into("Sliding", WindowFn::sliding_seconds(120, 60))
        .count_globally("CountSliding");
    // Windows [-60,60):2, [0,120):3, [60,180):2, [120,240):1.
    assert_that(&sliding, equal_to(vec![2, 3, 2, 1]));
    // Event times set from the data.
    let stamped = p
        .create("Raw", vec![5i64, 65, 70])
        .with_timestamps("Stamp", |x| seconds(*x))
        .window_into("Minutes", WindowFn::fixed_seconds(60))
        .combine_globally("SumPerMinute", Sum::new());
    assert_that(&stamped, equal_to(vec![5, 135]));
    p.run().unwrap();
}

#[test]
fn invalid_window_and_duplicate_labels_fail_at_run() {
    let p = TestPipeline::new();
    let xs = p.create("Xs", vec![1i64]);
    xs.map("Same", |x| x + 1);
    xs.map("Same", |x| x + 2);
    xs.window_into("Bad", WindowFn::fixed_seconds(0));
    let e = p.run().unwrap_err().to_string();
    assert!(e.contains("label 'Same' already exists"), "{e}");
    assert!(
        e.contains("transform 'Bad': fixed window size must be positive"),
        "{e}"
    );
}

#[derive(Clone, Serialize, Deserialize)]
struct FailOn(i64, bool);

impl DoFn for FailOn {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, i64>) -> anyhow::Result<()> {
        if *x == self.0 {
            if self.1 {
                panic!("boom at {x}");
            }
            anyhow::bail!("cannot handle {x}");
        }
        ctx.emit(*x);
        Ok(())
    }
}

/// `flat_map` passes its iterator's items on as they come: a panic inside the
/// iterator is the transform's (named with its element), a failure
/// downstream keeps the downstream transform's name.
#[test]
fn flat_map_failures_name_the_transform_that_failed() {
    let p = TestPipeline::new();
    p.create("Xs", vec![3i64, 5]).flat_map("Expand", |x| {
        let x = *x;
        (0..x).map(move |i| {
            if x == 5 && i == 4 {
                panic!("lazy boom")
            } else {
                i
            }
        })
    });
    let e = p.run().unwrap_err().to_string();
    assert!(e.contains("transform 'Expand' failed on element 5"), "{e}");
    assert!(e.contains("panicked: lazy boom"), "{e}");

    let p = TestPipeline::new();
    p.create("Xs", vec![3i64])
        .flat_map("Expand", |x| 0..*x)
        .try_map("Check", |i| {
            if *i == 2 {
                anyhow::bail!("two")
            }
            Ok(*i)
        });
    let e = p.run().unwrap_err().to_string();
    assert_eq!(e, "transform 'Check' failed on element 2: two");

    let p = TestPipeline::new();
    let out = p
        .create("Xs", vec![0i64, 1, 3])
        .flat_map("Expand", |x| 0..*x);
    assert_that(&out, equal_to(vec![0i64, 0, 1, 2]));
    p.run().expect("flat_map of ranges");
}

#[test]
fn dofn_errors_and_panics_name_the_transform_and_element() {
    for panics in [false, true] {
        let p = TestPipeline::new();
        p.create("Xs", (0..1000i64).collect())
            .par_do("Check", FailOn(777, panics))
            .map("Next", |x| x + 1);
        let e = p.run().unwrap_err().to_string();
        assert!(e.contains("transform 'Check' failed on element 777"), "{e}");
        let cause = if panics {
            "panicked: boom at 777"
        } else {
            "cannot handle 777"
        };
        assert!(e.contains(cause), "{e}");
    }
    let p = TestPipeline::new();
    p.create("Xs", vec![1i64, 0]).try_map("Divide", |x| {
        if *x == 0 {
            anyhow::bail!("division by zero")
        }
        Ok(10 / x)
    });
    let e = p.run().unwrap_err().to_string();
    assert_eq!(
        e,
        "transform 'Divide' failed on element 0: division by zero"
    );
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn read_text_globs_gzip_and_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.txt"), "one\r\ntwo\n\nthree");
    write(&dir.path().join("b.txt"), "four\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"five\nsix\n").unwrap();
    std::fs::write(dir.path().join("c.txt.gz"), gz.finish().unwrap()).unwrap();
    write(&dir.path().join("skip.csv"), "x");
    let p = TestPipeline::new();
    let lines = p.read_text("Read", format!("{}/*.txt*", dir.path().display()));
    assert_that(
        &lines,
        equal_to(strings(&["one", "two", "", "three", "four", "five", "six"])),
    );
    let header = p.read_text_with(
        "ReadSkip",
        ReadText {
            pattern: format!("{}/a.txt", dir.path().display()),
            skip_header_lines: 1,
        },
    );
    assert_that(&header, equal_to(strings(&["two", "", "three"])));
    p.run().unwrap();
}

#[test]
fn read_text_splits_large_files_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..120_000 {
        let line = format!("line {i} {}", "x".repeat(i % 37));
        text.push_str(&line);
        text.push('\n');
        expected.push(line);
    }
    write(&path, &text);
    assert!(
        text.len() > 3 << 20,
        "big enough to split into several ranges"
    );
    let mut opts = PipelineOptions::default();
    opts.direct.num_workers = Some(3);
    let p = TestPipeline::with_options(opts);
    let lines = p.read_text("Read", path.display().to_string());
    assert_that(&lines, equal_to(expected));
    p.run().unwrap();
}

/// A line's length with its first and last characters.
fn ends(l: &str) -> (i64, String) {
    let first = l.chars().next().map(String::from).unwrap_or_default();
    let last = l.chars().last().map(String::from).unwrap_or_default();
    (l.len() as i64, first + &last)
}

#[test]
fn read_text_ranges_cut_through_long_lines_multibyte_text_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.txt");
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..60_000 {
        // Lines longer than a read chunk, multi-byte characters where a
        // range may start, and both line endings.
        let line = match i {
            20_000 => "ł".repeat(1_500_000),
            40_000 => "x".repeat(2_500_000),
            _ => format!("zażółć {i} {}", "ę".repeat(i % 29)),
        };
        text.push_str(&line);
        text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
        expected.push(line);
    }
    // The last line has no line separator.
    text.push_str("koniec\r");
    expected.push("koniec\r".to_string());
    write(&path, &text);
    let mut opts = PipelineOptions::default();
    opts.direct.num_workers = Some(3);
    let p = TestPipeline::with_options(opts);
    let lengths = p
        .read_text("Read", path.display().to_string())
        .map("Ends", |l| ends(l));
    assert_that(
        &lengths,
        equal_to(expected.iter().map(|l| ends(l)).collect()),
    );
    p.run().unwrap();
}

#[test]
fn bad_inputs_fail_with_the_transform_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let p = TestPipeline::new();
    p.read_text(
        "ReadMissing",
        format!("{}/nope-*.txt", dir.path().display()),
    );
    let e = p.run().unwrap_err().to_string();
    assert!(e.contains("transform 'ReadMissing': no files match"), "{e}");

    write(&dir.path().join("bad.gz"), "this is not gzip");
    let p = TestPipeline::new();
    p.read_text("ReadGz", format!("{}/bad.gz", dir.path().display()));
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("transform 'ReadGz': cannot read") && e.contains("valid gzip"),
        "{e}"
    );

    std::fs::write(dir.path().join("latin1.txt"), b"ok\ncaf\xe9\n").unwrap();
    let p = TestPipeline::new();
    p.read_text("ReadLatin1", format!("{}/latin1.txt", dir.path().display()));
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("transform 'ReadLatin1'") && e.contains("byte 3 is not UTF-8"),
        "{e}"
    );
}

#[test]
fn write_text_shards_deterministically_and_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for workers in [1, 4] {
        let prefix = dir.path().join(format!("w{workers}/out"));
        let mut opts = PipelineOptions::default();
        opts.direct.num_workers = Some(workers);
        let p = TestPipeline::with_options(opts);
        let files = p
            .create("Xs", (0..5000i64).collect())
            .map("Fmt", |x| format!("n{x}"))
            .write_text(
                "Write",
                WriteText::to(prefix.display().to_string())
                    .suffix(".txt")
                    .shards(3),
            );
        let names: Vec<String> = (0..3)
            .map(|i| format!("{}-0000{i}-of-00003.txt", prefix.display()))
            .collect();
        assert_that(&files, equal_to(names.clone()));
        p.run().unwrap();
        let mut all = Vec::new();
        let mut contents = Vec::new();
        for n in &names {
            let text = std::fs::read_to_string(n).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.windows(2).all(|w| w[0] <= w[1]), "each shard sorted");
            all.extend(lines.iter().map(|l| l.to_string()));
            contents.push(text);
        }
        all.sort();
        assert_eq!(all.len(), 5000);
        let leftovers: Vec<_> = std::fs::read_dir(prefix.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".bigflow-temp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        outputs.push(contents);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "same shards whatever the worker count"
    );
}

#[test]
fn failed_run_leaves_no_complete_looking_shard() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out");
    let p = TestPipeline::new();
    let xs = p.create("Xs", (0..100i64).collect());
    xs.map("Fmt", |x| x.to_string())
        .write_text("Write", WriteText::to(prefix.display().to_string()));
    // A later failure in another branch must not matter to the atomicity of
    // the write: here the write itself is fed by a failing transform.
    let p2 = TestPipeline::new();
    p2.create("Xs", (0..100i64).collect())
        .par_do("Fail", FailOn(50, false))
        .map("Fmt", |x| x.to_string())
        .write_text("Write", WriteText::to(prefix.display().to_string()));
    assert!(p2.run().is_err());
    assert!(!dir.path().join("out-00000-of-00001").exists());
    p.run().unwrap();
    assert!(dir.path().join("out-00000-of-00001").exists());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sale {
    shop: String,
    amount: i64,
}
bigflow_beam::json_coder!(Sale);

#[test]
fn ndjson_read_and_write() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("sales.ndjson"),
        "{\"shop\":\"a\",\"amount\":3}\n\n{\"shop\":\"b\",\"amount\":4}\n{\"shop\":\"a\",\"amount\":5}\n",
    );
    let p = TestPipeline::new();
    let sales: PCollection<Sale> =
        p.read_ndjson("Sales", format!("{}/*.ndjson", dir.path().display()));
    let totals = sales
        .map("ByShop", |s| (s.shop.clone(), s.amount))
        .combine_per_key("Total", Sum::new())
        .map("ToSale", |(shop, amount)| Sale {
            shop: shop.clone(),
            amount: *amount,
        });
    totals.write_ndjson(
        "WriteTotals",
        WriteText::to(format!("{}/totals", dir.path().display())).suffix(".ndjson"),
    );
    p.run().unwrap();
    let out = std::fs::read_to_string(dir.path().join("totals-00000-of-00001.ndjson")).unwrap();
    assert_eq!(
        out,
        "{\"shop\":\"a\",\"amount\":8}\n{\"shop\":\"b\",\"amount\":4}\n"
    );

    write(&dir.path().join("bad.ndjson"), "{\"shop\":\"a\"}\n");
    let p = TestPipeline::new();
    let _: PCollection<Sale> =
        p.read_ndjson("BadSales", format!("{}/bad.ndjson", dir.path().display()));
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("transform 'BadSales' failed on element \"{\\\"shop\\\":\\\"a\\\"}\""),
        "{e}"
    );
    assert!(e.contains("missing field `amount`"), "{e}");
}

#[test]
fn group_by_key_over_the_memory_budget_spills_and_stays_correct() {
    let mut opts = PipelineOptions::default();
    opts.direct.memory_budget_bytes = Some(256 << 10);
    opts.direct.num_workers = Some(2);
    let p = TestPipeline::with_options(opts);
    let n = 200_000i64;
    let keys = 1000i64;
    let kv = p
        .create("Kv", (0..n).collect())
        .map("Key", move |x| (x % keys, *x));
    let grouped = kv.group_by_key("Group").map("Summarize", |(k, vs)| {
        let sum: i64 = vs.iter().sum();
        (*k, (vs.len() as i64, sum))
    });
    let expected: Vec<(i64, (i64, i64))> = (0..keys)
        .map(|k| {
            let count = n / keys;
            let sum: i64 = (0..count).map(|i| k + i * keys).sum();
            (k, (count, sum))
        })
        .collect();
    assert_that(&grouped, equal_to(expected));
    let r = p.run().unwrap();
    // 200k records of ~30 bytes + overhead are ~18 MB against a 256 KiB budget.
    assert!(r.spilled_runs > 10, "spilled {} runs", r.spilled_runs);
    assert!(
        r.spilled_bytes > 2 << 20,
        "spilled {} bytes",
        r.spilled_bytes
    );
}

#[test]
fn combine_per_key_over_the_memory_budget_spills_and_stays_correct() {
    let mut opts = PipelineOptions::default();
    opts.direct.memory_budget_bytes = Some(256 << 10);
    opts.direct.num_workers = Some(2);
    let p = TestPipeline::with_options(opts);
    let n = 240_000i64;
    let keys = 60_000i64;
    // 60k distinct string keys: their accumulators are several MB against
    // a 256 KiB budget, so the workers' tables flush often and the
    // shuffle spills.
    let kv = p
        .create("Kv", (0..n).collect())
        .map("Key", move |x| (format!("key-{:06}", x % keys), *x));
    let sums = kv.combine_per_key("Sum", Sum::<i64>::new());
    let means = kv.combine_per_key("Mean", Mean::<i64>::new());
    let per_key = n / keys;
    let sum_of = |k: i64| (0..per_key).map(|i| k + i * keys).sum::<i64>();
    assert_that(
        &sums,
        equal_to(
            (0..keys)
                .map(|k| (format!("key-{k:06}"), sum_of(k)))
                .collect(),
        ),
    );
    assert_that(
        &means,
        equal_to(
            (0..keys)
                .map(|k| (format!("key-{k:06}"), sum_of(k) as f64 / per_key as f64))
                .collect(),
        ),
    );
    let r = p.run().unwrap();
    assert!(r.spilled_runs > 10, "spilled {} runs", r.spilled_runs);
}

#[derive(Clone, Serialize, Deserialize)]
struct Slow;

impl DoFn for Slow {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: &i64, ctx: &mut Context<'_, i64>) -> anyhow::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        ctx.emit(*x);
        Ok(())
    }
}

#[test]
fn deadline_cancels_the_run() {
    let p = TestPipeline::new();
    p.create("Xs", (0..100_000i64).collect())
        .par_do("Slow", Slow);
    let started = std::time::Instant::now();
    let control = RunControl {
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(300)),
        ..RunControl::default()
    };
    let e = DirectRunner::default()
        .run(p, control)
        .unwrap_err()
        .to_string();
    assert!(e.contains("deadline passed"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dataflow_runner_is_refused_not_replaced() {
    let mut opts = PipelineOptions::default();
    opts.standard.runner = "DataflowRunner".into();
    let p = Pipeline::new(opts);
    p.create("Xs", vec![1i64]);
    // Without a project, region and temp location it cannot submit, and it
    // never falls back to running locally.
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("--project") || e.contains("--region") || e.contains("temp_location"),
        "{e}"
    );
}

#[test]
fn grouped_output_is_the_same_with_any_worker_count() {
    let mut results = Vec::new();
    for workers in [1, 2, 5] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PipelineOptions::default();
        opts.direct.num_workers = Some(workers);
        let p = TestPipeline::with_options(opts);
        p.create("Xs", (0..3000i64).collect())
            .map("Kv", |x| (x % 17, *x))
            .group_by_key("G")
            .map("Fmt", |(k, vs)| format!("{k}:{vs:?}"))
            .write_text(
                "W",
                WriteText::to(dir.path().join("o").display().to_string()),
            );
        p.run().unwrap();
        results.push(std::fs::read_to_string(dir.path().join("o-00000-of-00001")).unwrap());
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[1], results[2]);
    let m: HashMap<&str, usize> = results[0]
        .lines()
        .map(|l| (l.split(':').next().unwrap(), l.len()))
        .collect();
    assert_eq!(m.len(), 17);
}

#[test]
fn dofns_rebuild_by_name_from_the_plan() {
    let p = TestPipeline::new();
    p.create("Lines", strings(&["a bb ccc"])).par_do(
        "Split",
        SplitWords {
            min_len: 2,
            state: Vec::new(),
        },
    );
    let plan = p.plan();
    let t = plan["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "Split")
        .unwrap();
    let name = t["spec"]["dofn"].as_str().unwrap();
    let mut registry = bigflow_beam::DoFnRegistry::default();
    assert!(
        registry
            .rebuild::<SplitWords>(name, &t["spec"]["params"])
            .is_err(),
        "unregistered"
    );
    registry.register::<SplitWords>();
    assert!(registry.contains(name));
    let rebuilt: SplitWords = registry.rebuild(name, &t["spec"]["params"]).unwrap();
    assert_eq!(rebuilt.min_len, 2);
    // The rebuilt DoFn behaves as the original in a pipeline.
    let p2 = TestPipeline::new();
    let out = p2
        .create("Lines", strings(&["a bb ccc"]))
        .par_do("Split", rebuilt);
    assert_that(&out, equal_to(strings(&["bb", "ccc"])));
    p2.run().unwrap();
}
