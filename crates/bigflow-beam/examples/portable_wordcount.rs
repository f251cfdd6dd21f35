//! Beam's canonical word count on Beam's portable runner, with this binary
//! as the SDK worker (driver of `bench/beam_portable_wordcount.sh`).
//!
//! Submit (the workers are started by the worker pool at
//! `--environment_config`, e.g. Beam's `worker_pool_main
//! --container_executable=<this binary>`):
//!
//! ```text
//! portable_wordcount --input=IN --output=PREFIX --job_endpoint=HOST:PORT \
//!     --environment_config=HOST:PORT
//! ```
//!
//! Started with Beam's container boot flags (`--id=.. --control_endpoint=..
//! --logging_endpoint=.. --provision_endpoint=.. --artifact_endpoint=..`),
//! it serves as the worker and rebuilds the same pipeline from the pipeline
//! options (`input` and `output` come back from the Provision service).
//!
//! The pipeline is `apache_beam.examples.wordcount`'s: `[\w']+` tokens,
//! `(word, 1)` pairs summed per key, `word: count` lines, one shard.

use anyhow::{Context as _, Result, anyhow};
use bigflow_beam::prelude::*;
use bigflow_beam::runner::portable::{WorkerArgs, serve_worker};

/// Whether `c` is in `[\w']` (Python's `\w`: alphanumeric or `_`).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\''
}

/// The maximal runs of `[\w']` in `line`: the regex `[\w']+` without the
/// regex engine (an ASCII fast path; the same scanner as `beam_bench`).
fn words(line: &str) -> impl Iterator<Item = &str> {
    let bytes = line.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'\'' {
                    break;
                }
                i += 1;
            } else {
                let c = line[i..].chars().next()?;
                if is_word_char(c) {
                    break;
                }
                i += c.len_utf8();
            }
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'\'') {
                    break;
                }
                i += 1;
            } else {
                let c = line[i..].chars().next()?;
                if !is_word_char(c) {
                    break;
                }
                i += c.len_utf8();
            }
        }
        Some(&line[start..i])
    })
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct ExtractWords;

impl DoFn for ExtractWords {
    type In = String;
    type Out = String;
    fn process(&mut self, line: &String, ctx: &mut Context<'_, String>) -> Result<()> {
        for w in words(line) {
            ctx.emit(w.to_string());
        }
        Ok(())
    }
}

/// The word count of `input` into `output`, on the runner `options` name.
/// Built the same way by the submitter and by every worker.
fn build(options: PipelineOptions, input: &str, output: &str) -> Pipeline {
    let p = Pipeline::new(options);
    p.read_text("ReadLines", input)
        .par_do("ExtractWords", ExtractWords)
        .map("PairWithOne", |w| (w.clone(), 1i64))
        .combine_per_key("GroupAndSum", Sum::new())
        .map("Format", |(w, c)| format!("{w}: {c}"))
        .write_text("Write", WriteText::to(output));
    p
}

fn submit(args: &[String]) -> Result<()> {
    let mut options = PipelineOptions::from_args(args)?;
    options.set("runner", "PortableRunner")?;
    if options.portable.environment_type.is_none() {
        options.set("environment_type", "EXTERNAL")?;
    }
    let get = |key: &str| {
        options
            .extra
            .get(key)
            .cloned()
            .ok_or_else(|| anyhow!("--{key} is required"))
    };
    let (input, output) = (get("input")?, get("output")?);
    let p = build(options.clone(), &input, &output);
    let r = p.run().context("the word count failed")?;
    eprintln!("pipeline: {:?}", r.elapsed);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(worker) = WorkerArgs::from_flags(&args[1..]) {
        return serve_worker(worker?, |options| {
            let get = |key: &str| {
                options
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("the pipeline options have no {key}"))
            };
            Ok(build(
                PipelineOptions::default(),
                &get("input")?,
                &get("output")?,
            ))
        });
    }
    if args.len() < 2 {
        eprintln!(
            "usage: portable_wordcount --input=IN --output=PREFIX --job_endpoint=HOST:PORT --environment_config=HOST:PORT"
        );
        std::process::exit(2);
    }
    submit(&args[1..])
}
