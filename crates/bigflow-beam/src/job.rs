//! `BeamJob`: a Beam pipeline as a BigFlow job.
//!
//! As BigFlow's `BeamJob(id, entry_point, pipeline_options | test_pipeline,
//! wait_until_finish=True, execution_timeout=3h, use_docker_image=False)`.
//! For every run the job builds a fresh [`Pipeline`] (from the options, an
//! options function of the job context, or a test pipeline), hands it to the
//! entry point with the context and the job's arguments, then runs it. The
//! pipeline's own deadline is the job's execution timeout minus 2 minutes
//! (so the job can still report); when it passes, or the job is cancelled,
//! the run is cancelled and the job fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use bigflow_core::{Job, JobContext, JobResult, JobSettings, WithSettings};

use crate::graph::RunControl;
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;
use crate::runner::PipelineResult;

/// The job's arguments given to the entry point (BigFlow's `entry_point_arguments`).
pub type JobArgs = serde_json::Map<String, serde_json::Value>;

type EntryPoint = Arc<dyn Fn(&mut Pipeline, &JobContext, &JobArgs) -> Result<()> + Send + Sync>;
type OptionsFn = Arc<dyn Fn(&JobContext) -> Result<PipelineOptions> + Send + Sync>;

/// Where the job's pipeline comes from.
#[derive(Clone)]
enum PipelineSource {
    Options(Box<PipelineOptions>),
    OptionsFn(OptionsFn),
    Test,
}

/// The worker image recorded in the options (BigFlow's `use_docker_image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerImage {
    /// The SDK's default image.
    Default,
    /// The project's own image: the config's `docker_repository`.
    Project,
    /// This image.
    Image(String),
}

/// How much shorter than the job's timeout the pipeline's deadline is.
pub const PIPELINE_TIMEOUT_MARGIN: Duration = Duration::from_secs(120);

/// The pipeline's own timeout for a job timeout: 2 minutes shorter (or
/// the job timeout itself when that is 2 minutes or less).
pub fn pipeline_timeout(job_timeout: Duration) -> Duration {
    if job_timeout > PIPELINE_TIMEOUT_MARGIN {
        job_timeout - PIPELINE_TIMEOUT_MARGIN
    } else {
        job_timeout
    }
}

/// A Beam pipeline as a job.
#[derive(Clone)]
pub struct BeamJob {
    id: String,
    entry_point: EntryPoint,
    source: PipelineSource,
    args: JobArgs,
    wait_until_finish: bool,
    docker_image: DockerImage,
    settings: JobSettings,
}

impl std::fmt::Debug for BeamJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeamJob")
            .field("id", &self.id)
            .field("wait_until_finish", &self.wait_until_finish)
            .field("docker_image", &self.docker_image)
            .finish()
    }
}

impl BeamJob {
    /// A job whose `entry_point` adds transforms to the pipeline; the
    /// pipeline runs on the DirectRunner until options say otherwise.
    pub fn new(
        id: impl Into<String>,
        entry_point: impl Fn(&mut Pipeline, &JobContext, &JobArgs) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        BeamJob {
            id: id.into(),
            entry_point: Arc::new(entry_point),
            source: PipelineSource::Options(Box::default()),
            args: JobArgs::new(),
            wait_until_finish: true,
            docker_image: DockerImage::Default,
            settings: JobSettings::default(),
        }
    }

    /// Fixed pipeline options.
    pub fn pipeline_options(mut self, options: PipelineOptions) -> Self {
        self.source = PipelineSource::Options(Box::new(options));
        self
    }

    /// Options computed for each run from the job's context (config, runtime).
    pub fn pipeline_options_fn(
        mut self,
        f: impl Fn(&JobContext) -> Result<PipelineOptions> + Send + Sync + 'static,
    ) -> Self {
        self.source = PipelineSource::OptionsFn(Arc::new(f));
        self
    }

    /// Runs on a test pipeline (BigFlow's `test_pipeline`).
    pub fn test_pipeline(mut self) -> Self {
        self.source = PipelineSource::Test;
        self
    }

    /// Arguments handed to the entry point.
    pub fn args(mut self, args: JobArgs) -> Self {
        self.args = args;
        self
    }

    /// Whether the job waits for the pipeline (default true). The
    /// DirectRunner always runs to completion inside the job.
    pub fn wait_until_finish(mut self, wait: bool) -> Self {
        self.wait_until_finish = wait;
        self
    }

    /// The worker image to record in the options.
    pub fn use_docker_image(mut self, image: DockerImage) -> Self {
        self.docker_image = image;
        self
    }

    /// The options of a run for `ctx` (without building the pipeline).
    pub fn options_for(&self, ctx: &JobContext) -> Result<PipelineOptions> {
        let mut options = match &self.source {
            PipelineSource::Options(o) => (**o).clone(),
            PipelineSource::OptionsFn(f) => {
                f(ctx).with_context(|| format!("pipeline options of job {}", self.id))?
            }
            PipelineSource::Test => PipelineOptions::default(),
        };
        match &self.docker_image {
            DockerImage::Default => {}
            DockerImage::Image(i) => options.worker.sdk_container_image = Some(i.clone()),
            DockerImage::Project => {
                match ctx.config.get("docker_repository").and_then(|v| v.as_str()) {
                    Some(repo) => {
                        // The image this binary was deployed in (its version
                        // is in the image's environment), else the repository's latest.
                        let image = match std::env::var("BIGFLOW_IMAGE_VERSION") {
                            Ok(v) if !v.is_empty() => format!("{repo}:{v}"),
                            _ => format!("{repo}:latest"),
                        };
                        options.worker.sdk_container_image = Some(image);
                        // Dataflow gets the image pinned by digest.
                        options
                            .extra
                            .insert("bigflow_resolve_image_digest".into(), "true".into());
                    }
                    None if options.is_dataflow() => {
                        return Err(anyhow!(
                            "job {}: use_docker_image(Project) needs 'docker_repository' in the workflow's config",
                            self.id
                        ));
                    }
                    None => {}
                }
            }
        }
        options
            .validate()
            .map_err(|e| anyhow!("job {}: {e}", self.id))?;
        Ok(options)
    }

    /// Builds and runs the pipeline for `ctx`; the result has its metrics.
    pub fn run_pipeline(&self, ctx: &JobContext) -> Result<PipelineResult> {
        let mut options = self.options_for(ctx)?;
        // What a worker process needs to rebuild this pipeline.
        for (k, v) in [
            ("bigflow_job_id", &self.id),
            ("bigflow_workflow_id", &ctx.workflow_id),
            ("bigflow_runtime", &ctx.runtime_str),
            ("bigflow_env", &ctx.env),
        ] {
            options.extra.insert(k.to_string(), v.clone());
        }
        // Credentials of a remote runner, from the job's config (read by
        // the runner, never sent to it).
        for &key in crate::options::Credentials::KEYS {
            if let Some(v) = ctx.config.get(key).and_then(|v| v.as_str())
                && !options.credentials.0.contains_key(key)
            {
                options.credentials.0.insert(key.to_string(), v.to_string());
            }
        }
        // Fail before building anything when the runner cannot run here.
        crate::runner::runner_for(&options).map_err(|e| anyhow!("job {}: {e}", self.id))?;
        let mut pipeline = Pipeline::new(options);
        (self.entry_point)(&mut pipeline, ctx, &self.args)
            .with_context(|| format!("job {}: building the pipeline failed", self.id))?;
        if !self.wait_until_finish && !pipeline.options().is_dataflow() {
            tracing::info!(job_id = %self.id, "wait_until_finish=false only detaches from Dataflow jobs; this runner runs to completion");
        }
        let timeout = pipeline_timeout(self.settings.execution_timeout);
        let ctx2 = ctx.clone();
        let control = RunControl {
            deadline: Some(Instant::now() + timeout),
            external: Some(Arc::new(move || ctx2.is_cancelled())),
            detach: !self.wait_until_finish,
            ..RunControl::default()
        };
        let result = pipeline
            .run_with(control)
            .map_err(|e| anyhow!("job {}: the Beam pipeline failed: {e:#}", self.id))?;
        tracing::info!(
            job_id = %self.id,
            elapsed_ms = result.elapsed.as_millis() as u64,
            spilled_bytes = result.spilled_bytes,
            "Beam pipeline finished"
        );
        Ok(result)
    }
}

impl WithSettings for BeamJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

impl Job for BeamJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        self.run_pipeline(ctx).map(|_| ())
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigflow_core::{ResolvedConfig, parse_runtime};

    fn ctx() -> JobContext {
        JobContext::new(
            parse_runtime("2020-01-01").unwrap(),
            "wf",
            "beam",
            ResolvedConfig::empty("dev"),
        )
    }

    #[test]
    fn pipeline_deadline_is_two_minutes_shorter() {
        assert_eq!(
            pipeline_timeout(Duration::from_secs(3 * 3600)),
            Duration::from_secs(3 * 3600 - 120)
        );
        assert_eq!(
            pipeline_timeout(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        let j = BeamJob::new("b", |_, _, _| Ok(()));
        assert_eq!(j.execution_timeout(), Duration::from_secs(3 * 3600));
        assert!(j.wait_until_finish);
    }

    #[test]
    fn dataflow_without_an_image_fails_before_building_naming_the_option() {
        let opts = PipelineOptions::from_args([
            "--runner=DataflowRunner",
            "--project=p",
            "--region=europe-west1",
            "--temp_location=gs://b/tmp",
        ])
        .unwrap();
        let j = BeamJob::new("b", |_, _, _| panic!("must not build")).pipeline_options(opts);
        let e = format!("{:#}", j.execute(&ctx()).unwrap_err());
        assert!(e.contains("--sdk_container_image"), "{e}");
        assert!(e.contains("DockerImage::Project"), "{e}");
    }

    #[test]
    fn invalid_options_fail_the_job() {
        let opts = PipelineOptions::from_args(["--runner=DataflowRunner", "--project=p"]).unwrap();
        let j = BeamJob::new("b", |_, _, _| Ok(())).pipeline_options(opts);
        let e = j.execute(&ctx()).unwrap_err().to_string();
        assert!(e.contains("--region"), "{e}");
    }

    #[test]
    fn docker_image_is_recorded() {
        let j = BeamJob::new("b", |_, _, _| Ok(()))
            .use_docker_image(DockerImage::Image("eu.gcr.io/p/img:1".into()));
        let o = j.options_for(&ctx()).unwrap();
        assert_eq!(
            o.worker.sdk_container_image.as_deref(),
            Some("eu.gcr.io/p/img:1")
        );
    }
}
