//! The starter's Beam example: `wordcount`, as Beam's canonical word count.
//!
//! One `BeamJob` reads `resources/wordcount.txt`, extracts words (tokens
//! matching `[\w']+`), counts them and writes `word: count` lines to sharded
//! files at the config's `wordcount_output` prefix (relative paths are
//! relative to the working directory). The pipeline options come from the
//! config like BigFlow's `dataflow_pipeline()`: `dev` runs on the embedded
//! DirectRunner; `portable` runs on a Beam runner through its job service
//! (its `host:port` from the environment variable `bf_beam_job_endpoint`;
//! e.g. Beam's own
//! `python -m apache_beam.runners.portability.local_job_service_main --port 8099`),
//! with this binary started as the SDK worker (or, with
//! `bf_beam_worker_pool=HOST:PORT`, by that external worker pool); `dataflow` submits to
//! Dataflow (the seed's `dataflow_pipeline()`: project, region, staging and
//! temp locations from the config) reading and writing `gs://`, with the
//! project's image (`worker_image`) as the worker container; `prod` names
//! the DataflowRunner without an image, which is refused.

use bigflow::beam::combiners::Sum;
use bigflow::beam::dofn::Context;
use bigflow::prelude::*;

/// Splits a line into words, as Beam's `WordExtractingDoFn`.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct WordExtractingDoFn {
    /// Compiled in `setup` on each worker; not a parameter.
    #[serde(skip)]
    re: Option<regex::Regex>,
}

impl DoFn for WordExtractingDoFn {
    type In = String;
    type Out = String;

    fn setup(&mut self) -> bigflow::anyhow::Result<()> {
        self.re = Some(regex::Regex::new(r"[\w']+")?);
        Ok(())
    }

    fn process(
        &mut self,
        line: &String,
        ctx: &mut Context<'_, String>,
    ) -> bigflow::anyhow::Result<()> {
        let re = self
            .re
            .as_ref()
            .ok_or_else(|| bigflow::anyhow::anyhow!("setup was not called"))?;
        for word in re.find_iter(line) {
            ctx.emit(word.as_str().to_string());
        }
        Ok(())
    }
}

/// `(word, count)` for every word of `lines`.
pub fn count_words(lines: &PCollection<String>) -> PCollection<(String, i64)> {
    lines
        .par_do("ExtractWords", WordExtractingDoFn::default())
        .map("PairWithOne", |w| (w.clone(), 1i64))
        .combine_per_key("GroupAndSum", Sum::new())
}

/// The whole pipeline: read, count, format, write.
pub fn build(pipeline: &Pipeline, input: &str, output: &str) {
    let counts = count_words(&pipeline.read_text("ReadLines", input));
    counts
        .map("Format", |(word, count)| format!("{word}: {count}"))
        .write_text("WriteCounts", WriteText::to(output).suffix(".txt"));
}

/// The example's configuration.
pub fn config() -> Config {
    Config::new(
        "dev",
        [
            ("gcp_project_id", json!("my-project-{env}")),
            ("region", json!("europe-west1")),
            ("bucket", json!("{gcp_project_id}-dataflow")),
            ("machine_type", json!("n2-standard-2")),
            ("runner", json!("DirectRunner")),
            ("wordcount_output", json!("target/wordcount/{env}/counts")),
        ],
    )
    .add_configuration(
        "portable",
        [
            ("runner", json!("PortableRunner")),
            // Read from `bf_beam_job_endpoint` (e.g. `localhost:8099`).
            ("beam_job_endpoint", json!(null)),
        ],
    )
    .add_configuration(
        "dataflow",
        [
            ("runner", json!("DataflowRunner")),
            (
                "wordcount_input",
                json!("gs://{bucket}/wordcount/input/*.txt"),
            ),
            ("wordcount_output", json!("gs://{bucket}/wordcount/counts")),
            (
                "worker_image",
                json!(
                    "europe-west1-docker.pkg.dev/{gcp_project_id}/bigflow/bigflow-examples:latest"
                ),
            ),
        ],
    )
    .add_configuration(
        "prod",
        [
            ("runner", json!("DataflowRunner")),
            ("wordcount_output", json!("gs://{bucket}/wordcount/counts")),
        ],
    )
}

/// The seed's `dataflow_pipeline()`: options from the config.
pub fn pipeline_options(ctx: &JobContext) -> bigflow::anyhow::Result<PipelineOptions> {
    let get = |k: &str| ctx.config.get_str(k);
    let mut options = PipelineOptions::default().with_unique_job_name("beam-wordcount");
    let gc = &mut options.google_cloud;
    gc.project = Some(get("gcp_project_id")?);
    gc.region = Some(get("region")?);
    gc.staging_location = Some(format!("gs://{}/staging", get("bucket")?));
    gc.temp_location = Some(format!("gs://{}/temp", get("bucket")?));
    options.worker.machine_type = Some(get("machine_type")?);
    options.worker.max_num_workers = Some(2);
    if let Ok(image) = get("worker_image") {
        options.worker.sdk_container_image = Some(image);
    }
    options.worker.autoscaling_algorithm = Some("THROUGHPUT_BASED".into());
    let runner = get("runner")?;
    options.set("runner", &runner)?;
    if runner == "PortableRunner" {
        options.set("job_endpoint", &get("beam_job_endpoint")?)?;
        // Optional (`bf_beam_worker_pool=HOST:PORT`): workers from an
        // external pool, e.g. Beam's `worker_pool_main` starting the image's
        // `/opt/apache/beam/boot`; else the submitter starts this binary.
        if let Ok(pool) = get("beam_worker_pool").map(|p| p.trim().to_string())
            && !pool.is_empty()
        {
            options.set("environment_type", "EXTERNAL")?;
            options.set("environment_config", &pool)?;
        }
    }
    Ok(options)
}

/// One `BeamJob` counting the words of `resources/wordcount.txt`.
pub fn workflow() -> WorkflowBuilder {
    let job = BeamJob::new("count_words", |pipeline, ctx, _args| {
        // The config's input (gs:// on Dataflow), else the bundled text.
        let input = match ctx.config.get_str("wordcount_input") {
            Ok(pattern) => pattern,
            Err(_) => ctx.resource("wordcount.txt")?.display().to_string(),
        };
        let output = ctx.config.get_str("wordcount_output")?;
        build(pipeline, &input, &output);
        Ok(())
    })
    .pipeline_options_fn(pipeline_options)
    .with_retry_count(1);
    Workflow::builder("wordcount")
        .config(config())
        .depends_on_past(false)
        .jobs([job])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigflow::beam::testing::{TestPipeline, assert_that, equal_to};

    #[test]
    fn counts_words_like_beam() {
        let p = TestPipeline::new();
        let lines = p.create(
            "Lines",
            vec![
                "Love's not Time's fool,".to_string(),
                "not love; LOVE 2 love_x".to_string(),
            ],
        );
        let counts = count_words(&lines);
        let s = |w: &str, n: i64| (w.to_string(), n);
        assert_that(
            &counts,
            equal_to(vec![
                s("Love's", 1),
                s("not", 2),
                s("Time's", 1),
                s("fool", 1),
                s("love", 1),
                s("LOVE", 1),
                s("2", 1),
                s("love_x", 1),
            ]),
        );
        p.run().unwrap();
    }

    #[test]
    fn prod_options_name_dataflow() {
        let c = config().resolve(Some("prod")).unwrap();
        let ctx = JobContext::new(
            bigflow::parse_runtime("2020-01-01").unwrap(),
            "wordcount",
            "count_words",
            c,
        );
        let o = pipeline_options(&ctx).unwrap();
        assert!(o.is_dataflow());
        assert_eq!(
            o.google_cloud.temp_location.as_deref(),
            Some("gs://my-project-prod-dataflow/temp")
        );
        o.validate().unwrap();
        assert!(
            o.google_cloud
                .job_name
                .unwrap()
                .starts_with("beam-wordcount-")
        );
    }
}
