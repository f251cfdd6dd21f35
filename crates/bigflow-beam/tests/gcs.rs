//! Cloud Storage in pipelines: `gs://` sources and sinks against the real
//! storage emulator (PyPI `gcp-storage-emulator`), on the DirectRunner and
//! on Beam 2.77's portable runner with this crate's SDK harness as the
//! worker. Inputs are uploaded, and outputs checked, through the emulator's
//! own Python (an independent client); `STORAGE_EMULATOR_HOST` points the
//! pipelines at it.
#![cfg(feature = "gcs")]

use std::io::Write as _;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use bigflow_beam::prelude::*;
use bigflow_testkit::StorageEmulator;

const BUCKET: &str = "pipelines";

/// One emulator per test; the tests of this file run one at a time
/// because `STORAGE_EMULATOR_HOST` is process-wide.
struct Gcs {
    emulator: StorageEmulator,
    _one_at_a_time: MutexGuard<'static, ()>,
}

fn gcs() -> Option<Gcs> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let emulator = StorageEmulator::start()?;
    // SAFETY: every test of this binary holds LOCK while it runs, so no
    // other thread of ours reads the environment now.
    unsafe { std::env::set_var("STORAGE_EMULATOR_HOST", &emulator.endpoint) };
    emulator.create_bucket(BUCKET);
    Some(Gcs {
        emulator,
        _one_at_a_time: guard,
    })
}

fn python() -> std::path::PathBuf {
    bigflow_testkit::peers_dir().join("gcs-emulator/bin/python")
}

impl Gcs {
    /// Uploads `data` as `gs://BUCKET/name` with the emulator's Python.
    fn put(&self, name: &str, data: &[u8]) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(data).unwrap();
        let script = r#"
import sys, urllib.request, urllib.parse
endpoint, bucket, name, path = sys.argv[1:5]
url = "%s/upload/storage/v1/b/%s/o?uploadType=media&name=%s" % (endpoint, bucket, urllib.parse.quote(name, safe=""))
data = open(path, "rb").read()
urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST",
    headers={"Content-Type": "application/octet-stream"})).read()
"#;
        let out = Command::new(python())
            .args(["-c", script, &self.emulator.endpoint, BUCKET, name])
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The bytes of `gs://BUCKET/name`, downloaded with the emulator's Python.
    fn get(&self, name: &str) -> Vec<u8> {
        let script = r#"
import sys, urllib.request, urllib.parse
endpoint, bucket, name = sys.argv[1:4]
url = "%s/storage/v1/b/%s/o/%s?alt=media" % (endpoint, bucket, urllib.parse.quote(name, safe=""))
sys.stdout.buffer.write(urllib.request.urlopen(url).read())
"#;
        let out = Command::new(python())
            .args(["-c", script, &self.emulator.endpoint, BUCKET, name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The object names under `prefix`, sorted.
    fn objects(&self, prefix: &str) -> Vec<String> {
        self.emulator.objects(BUCKET, prefix)
    }
}

fn url(name: &str) -> String {
    format!("gs://{BUCKET}/{name}")
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The lines read from `pattern` by a DirectRunner pipeline with `workers` threads.
fn read_with_pipeline(pattern: &str, workers: usize) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    let prefix = out.path().join("lines").display().to_string();
    let p = Pipeline::new(
        PipelineOptions::from_args([format!("--direct_num_workers={workers}")]).unwrap(),
    );
    p.read_text("Read", pattern)
        .write_text("Write", WriteText::to(&prefix));
    p.run().unwrap();
    sorted(bigflow_beam::io::read_lines(&format!("{prefix}*")).unwrap())
}

#[test]
fn globs_match_objects_as_they_match_files() {
    let Some(gcs) = gcs() else {
        return;
    };
    gcs.put("in/a.txt", b"a1\na2\n");
    gcs.put("in/b.txt", b"b1\r\nb2");
    gcs.put("in/sub/c.txt", b"c1\n");
    gcs.put("in/notes.csv", b"x,y\n");
    gcs.put("other/d.txt", b"d1\n");

    // `*` stays in its "directory", as a local glob does.
    assert_eq!(
        read_with_pipeline(&url("in/*.txt"), 2),
        strings(&["a1", "a2", "b1", "b2"])
    );
    // `**` crosses them.
    assert_eq!(
        read_with_pipeline(&url("in/**/*.txt"), 2),
        strings(&["a1", "a2", "b1", "b2", "c1"])
    );
    assert_eq!(read_with_pipeline(&url("in/?.txt"), 1).len(), 4);
    // One object by its name.
    assert_eq!(
        read_with_pipeline(&url("in/sub/c.txt"), 1),
        strings(&["c1"])
    );

    // Typed NDJSON from Cloud Storage.
    gcs.put("json/rows.ndjson", b"[\"x\",1]\n\n[\"y\",2]\n");
    let p = TestPipeline::new();
    let rows = p.read_ndjson::<(String, i64)>("Rows", url("json/*.ndjson"));
    assert_that(&rows, equal_to(vec![("x".into(), 1), ("y".into(), 2)]));
    p.run().unwrap();

    // Nothing matches: the error says where it looked.
    let p = TestPipeline::new();
    p.read_text("Read", url("in/*.parquet"));
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(
        e.contains("no objects match 'gs://pipelines/in/*.parquet'"),
        "{e}"
    );
    let p = TestPipeline::new();
    p.read_text("Read", "gs://no-such-bucket/x/*.txt");
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(e.contains("404"), "{e}");
}

/// Lines of varying lengths (some long, some CRLF, the last one unterminated).
fn numbered_lines(n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let line = format!("{i:07} {}", "x".repeat((i * 7919) % 300));
        text.push_str(&line);
        if i + 1 < n {
            text.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
        }
        lines.push(line);
    }
    (text, sorted(lines))
}

#[test]
fn a_large_object_is_read_in_ranges_with_every_line_once() {
    let Some(gcs) = gcs() else {
        return;
    };
    // ~6 MB: with 4 workers it is split into 1 MiB ranges (at least).
    let (text, want) = numbered_lines(40_000);
    assert!(text.len() > 5 << 20);
    gcs.put("big/lines.txt", text.as_bytes());
    for workers in [1, 4] {
        let got = read_with_pipeline(&url("big/lines.txt"), workers);
        assert_eq!(got.len(), want.len(), "workers {workers}");
        assert!(got == want, "workers {workers}: lines differ");
    }
}

#[test]
fn gzip_objects_are_decompressed_and_gzip_shards_written() {
    let Some(gcs) = gcs() else {
        return;
    };
    gcs.put("mixed/a.txt.gz", &gzip("g1\ng2\n"));
    gcs.put("mixed/b.txt", b"p1\n");
    // Two gzip members in one object (as `cat a.gz b.gz` makes).
    let mut two = gzip("m1\n");
    two.extend(gzip("m2\n"));
    gcs.put("mixed/c.gz", &two);
    assert_eq!(
        read_with_pipeline(&url("mixed/*"), 2),
        strings(&["g1", "g2", "m1", "m2", "p1"])
    );

    // A corrupt gzip object fails the run naming it.
    gcs.put("bad/x.gz", b"not gzip at all");
    let p = TestPipeline::new();
    p.read_text("Read", url("bad/x.gz"));
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(e.contains("gs://pipelines/bad/x.gz"), "{e}");
    assert!(e.contains("gzip"), "{e}");

    // Gzip shards written to Cloud Storage are gzip objects.
    let p = TestPipeline::new();
    p.create("Lines", strings(&["z1", "z2", "z3"]))
        .write_text("Write", WriteText::to(url("gzout/part")).shards(2).gzip());
    p.run().unwrap();
    let names = gcs.objects("gzout/");
    assert_eq!(
        names,
        strings(&[
            "gzout/part-00000-of-00002.gz",
            "gzout/part-00001-of-00002.gz"
        ])
    );
    assert_eq!(&gcs.get(&names[0])[..2], &[0x1f, 0x8b]);
    assert_eq!(
        sorted(bigflow_beam::io::read_lines(&url("gzout/part-*")).unwrap()),
        strings(&["z1", "z2", "z3"])
    );
}

#[test]
fn shards_written_to_cloud_storage_read_back_whole() {
    let Some(gcs) = gcs() else {
        return;
    };
    let words: Vec<String> = (0..5000).map(|i| format!("word-{i}")).collect();
    let p = TestPipeline::new();
    let files = p.create("Words", words.clone()).write_text(
        "Write",
        WriteText::to(url("out/words")).shards(3).suffix(".txt"),
    );
    assert_that(
        &files,
        equal_to(
            (0..3)
                .map(|i| url(&format!("out/words-0000{i}-of-00003.txt")))
                .collect(),
        ),
    );
    p.run().unwrap();
    // Exactly the shards: no temporary objects are left.
    assert_eq!(
        gcs.objects("out/"),
        (0..3)
            .map(|i| format!("out/words-0000{i}-of-00003.txt"))
            .collect::<Vec<_>>()
    );
    // What the emulator holds is what was written.
    let mut stored: Vec<String> = gcs
        .objects("out/")
        .iter()
        .flat_map(|n| {
            String::from_utf8(gcs.get(n))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    stored.sort();
    assert_eq!(stored, sorted(words.clone()));
    assert_eq!(read_with_pipeline(&url("out/words-*"), 3), sorted(words));

    // A shard larger than one upload chunk (8 MiB) goes up in a resumable
    // upload, and a pipeline reads it back in ranges.
    let (_, big) = numbered_lines(70_000);
    let p = TestPipeline::new();
    p.create("Big", big.clone())
        .write_text("Write", WriteText::to(url("large/lines")));
    p.run().unwrap();
    assert_eq!(
        gcs.objects("large/"),
        strings(&["large/lines-00000-of-00001"])
    );
    assert!(gcs.get("large/lines-00000-of-00001").len() > 9 << 20);
    assert_eq!(read_with_pipeline(&url("large/lines-*"), 4), big);

    // NDJSON both ways.
    let p = TestPipeline::new();
    p.create("Rows", vec![(s("a"), 1i64), (s("b"), 2)])
        .write_ndjson("Write", WriteText::to(url("json/rows")).suffix(".ndjson"));
    p.run().unwrap();
    let p = TestPipeline::new();
    let rows = p.read_ndjson::<(String, i64)>("Read", url("json/rows-*.ndjson"));
    assert_that(&rows, equal_to(vec![(s("a"), 1), (s("b"), 2)]));
    p.run().unwrap();
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Words to counts: reads `input`, fails on the word `boom` when `fail`.
fn word_count(p: &Pipeline, input: &str, output: &str, fail: bool) {
    p.read_text("Read", input)
        .flat_map("Split", |l: &String| {
            l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
        })
        .try_map("Check", move |w: &String| {
            if fail && w == "boom" {
                anyhow::bail!("the word 'boom' is not allowed");
            }
            Ok(w.clone())
        })
        .count_per_element("Count")
        .map("Format", |(w, n): &(String, i64)| format!("{w}: {n}"))
        .write_text("Write", WriteText::to(output).shards(3));
}

#[test]
fn a_failing_pipeline_leaves_no_final_shards() {
    let Some(gcs) = gcs() else {
        return;
    };
    gcs.put("words/a.txt", b"a b boom c\n");
    let p = TestPipeline::new();
    word_count(&p, &url("words/*.txt"), &url("counts/direct"), true);
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(e.contains("'boom' is not allowed"), "{e}");
    assert_eq!(gcs.objects("counts/"), Vec::<String>::new());
}

/// A Parquet shard that cannot be written fails the run after the others
/// were uploaded: the temporary objects go, nothing looks complete.
#[cfg(feature = "parquet")]
#[test]
fn a_failed_parquet_write_leaves_nothing_behind() {
    use bigflow_beam::parquet_io::{DataType, Field, Schema};
    let Some(gcs) = gcs() else {
        return;
    };
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        id: i64,
        name: Option<String>,
    }
    bigflow_beam::json_coder!(Row);
    let rows: Vec<Row> = (0..300)
        .map(|id| Row {
            id,
            name: Some(format!("n{id}")),
        })
        .collect();
    // Round trip first: Parquet on Cloud Storage, read by ranges.
    let p = TestPipeline::new();
    p.create("Rows", rows.clone()).write_parquet(
        "Write",
        WriteText::to(url("pq/rows")).shards(2),
        schema.clone(),
    );
    p.run().unwrap();
    assert_eq!(
        gcs.objects("pq/"),
        strings(&[
            "pq/rows-00000-of-00002.parquet",
            "pq/rows-00001-of-00002.parquet"
        ])
    );
    let p = TestPipeline::new();
    let back = p.read_parquet::<Row>("Read", url("pq/*.parquet"));
    assert_that(&back, equal_to(rows.clone()));
    p.run().unwrap();

    // One row with a null name: its shard fails, the other was complete.
    let mut bad = rows;
    bad[7].name = None;
    let p = TestPipeline::new();
    p.create("Rows", bad).write_parquet(
        "Write",
        WriteText::to(url("pqbad/rows")).shards(4),
        schema,
    );
    let e = format!("{:#}", p.run().unwrap_err());
    assert!(e.contains("pqbad/rows"), "{e}");
    assert_eq!(gcs.objects("pqbad/"), Vec::<String>::new());
}

#[cfg(feature = "portable")]
mod portable {
    use super::*;
    use bigflow_testkit::beam::BeamJobService;

    fn options(service: &BeamJobService) -> PipelineOptions {
        PipelineOptions::from_args([
            "--runner=PortableRunner".to_string(),
            format!("--job_endpoint={}", service.endpoint()),
            "--environment_type=LOOPBACK".to_string(),
        ])
        .unwrap()
    }

    #[test]
    fn beams_runner_reads_and_writes_cloud_storage_as_the_direct_runner() {
        let Some(gcs) = gcs() else {
            return;
        };
        let Some(service) = BeamJobService::start() else {
            return;
        };
        // Several objects, one gzip, one large enough to be split in ranges.
        gcs.put("words/a.txt", b"a b c\nb c\nc\n");
        gcs.put("words/b.txt.gz", &gzip("d d d d\ne\n"));
        let big: String = (0..200_000)
            .map(|i| format!("word{} extra{}\n", i % 97, i % 13))
            .collect();
        assert!(big.len() > 2 << 20);
        gcs.put("words/big.txt", big.as_bytes());

        let p = Pipeline::new(options(&service));
        word_count(&p, &url("words/*"), &url("portable/counts"), false);
        p.run()
            .unwrap_or_else(|e| panic!("{e:#}\n--- Beam's log ---\n{}", service.log()));
        let d = Pipeline::new(PipelineOptions::default());
        word_count(&d, &url("words/*"), &url("direct/counts"), false);
        d.run().unwrap();

        let got = sorted(bigflow_beam::io::read_lines(&url("portable/counts-*")).unwrap());
        let want = sorted(bigflow_beam::io::read_lines(&url("direct/counts-*")).unwrap());
        assert_eq!(got, want);
        assert!(
            got.contains(&s("d: 4")) && got.contains(&s("word0: 2062")),
            "{got:?}"
        );
        // Only the shards: the workers' temporary objects are gone.
        assert_eq!(
            gcs.objects("portable/"),
            (0..3)
                .map(|i| format!("portable/counts-0000{i}-of-00003"))
                .collect::<Vec<_>>()
        );

        // A DoFn error on the workers: the job fails, no shard is final.
        gcs.put("bad/a.txt", b"a boom\n");
        let p = Pipeline::new(options(&service));
        word_count(&p, &url("bad/*"), &url("failed/counts"), true);
        let e = format!("{:#}", p.run().unwrap_err());
        assert!(e.contains("boom"), "{e}");
        let finals: Vec<String> = gcs
            .objects("failed/")
            .into_iter()
            .filter(|n| n.starts_with("failed/counts-"))
            .collect();
        assert_eq!(finals, Vec::<String>::new());
    }
}
