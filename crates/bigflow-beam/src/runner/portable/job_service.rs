//! A client of Beam's Job API: submits a Runner API pipeline to a Beam job
//! service and follows the job to its end.
//!
//! The steps are those of Beam's own portable runners: `Prepare` (pipeline,
//! options, job name); artifact staging over the service's
//! `ArtifactStagingService` — a *reverse* exchange in which the service asks
//! this client to resolve and send each environment's dependencies, so it
//! is run even when there are none, which tells the service that staging is
//! complete; `Run`; then `GetState` every poll interval until a terminal
//! state, while a `GetMessageStream` opened right after `Run` collects the
//! job's error messages; finally `GetJobMetrics`.
//!
//! Between polls the run's [`RunControl`] is checked: once it reports a
//! cancellation or a passed deadline the job is cancelled (`Cancel`, then a
//! bounded wait for a terminal state) and the run fails with the reason. A
//! job that fails on its own is not an error here: the [`JobOutcome`]
//! carries its state and messages, and the caller words the error.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::graph::RunControl;
use crate::proto::job_management::artifact_request_wrapper::Request as ArtifactRequest;
use crate::proto::job_management::artifact_response_wrapper::Response as ArtifactResponse;
use crate::proto::job_management::artifact_staging_service_client::ArtifactStagingServiceClient;
use crate::proto::job_management::job_message::MessageImportance;
use crate::proto::job_management::job_messages_response::Response as MessageOrState;
use crate::proto::job_management::job_service_client::JobServiceClient;
use crate::proto::job_management::job_state::Enum as JobState;
use crate::proto::job_management::{
    ArtifactResponseWrapper, CancelJobRequest, GetArtifactResponse, GetJobMetricsRequest,
    GetJobStateRequest, JobMessagesRequest, PrepareJobRequest, PrepareJobResponse,
    ResolveArtifactsResponse, RunJobRequest,
};
use crate::proto::pipeline::{
    ArtifactFilePayload, ArtifactInformation, EmbeddedFilePayload, MonitoringInfo, Pipeline,
};

/// How long to wait for a cancelled job to reach a terminal state.
const CANCEL_WAIT: Duration = Duration::from_secs(60);
/// How long to wait, once the job ended, for its message stream to deliver
/// the last messages and close.
const MESSAGE_DRAIN: Duration = Duration::from_secs(5);
/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the artifact staging exchange may take.
const STAGING_TIMEOUT: Duration = Duration::from_secs(600);
/// Consecutive transient `GetState` failures tolerated while following a job.
const STATE_RETRIES: u32 = 5;
/// Size of the chunks artifacts are sent in.
const CHUNK: usize = 1 << 20;

const FILE_ARTIFACT: &str = "beam:artifact:type:file:v1";
const EMBEDDED_ARTIFACT: &str = "beam:artifact:type:embedded:v1";

/// How a job ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobOutcome {
    /// The terminal state's name in Beam's `JobState` enum: `DONE`,
    /// `FAILED`, `CANCELLED`, `UPDATED` or `DRAINED`.
    pub state: String,
    /// The id the service gave the job.
    pub job_id: String,
    /// The job's messages of error importance, in the order the service sent
    /// them (for a failed job: the failure and its traceback).
    pub messages: Vec<String>,
    /// The job's metrics from `GetJobMetrics`: the committed ones, or the
    /// attempted ones when none are committed; empty when the service does
    /// not implement the call.
    pub metrics: Vec<MonitoringInfo>,
}

/// Submits `pipeline` to the Beam job service at `endpoint` (`host:port`)
/// as `job_name` with `options` (Beam's `beam:option:NAME:v1` keys), and
/// follows it until it ends, checking `control` every `poll`.
///
/// Returns the outcome of a job that ended in any terminal state, `FAILED`
/// included. Fails when the service cannot be reached or refuses the job,
/// and when `control` stops the run: the job is then cancelled and the error
/// carries the control's reason.
pub(crate) async fn run_job(
    endpoint: &str,
    pipeline: Pipeline,
    job_name: &str,
    options: prost_types::Struct,
    control: &RunControl,
    poll: Duration,
) -> Result<JobOutcome> {
    let channel = connect(endpoint).await.map_err(|e| {
        anyhow!(
            "cannot reach the Beam job service at {endpoint}: {e:#}; start one (e.g. python -m \
             apache_beam.runners.portability.local_job_service_main --port {}) or fix \
             --job_endpoint",
            port_of(endpoint)
        )
    })?;
    let mut jobs = JobServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);

    // The dependencies the service may ask for while staging: nothing else
    // is served (it must not read arbitrary files of this machine).
    let artifacts: Vec<ArtifactInformation> = pipeline
        .components
        .iter()
        .flat_map(|c| c.environments.values())
        .flat_map(|e| e.dependencies.iter().cloned())
        .collect();
    let prepared = jobs
        .prepare(PrepareJobRequest {
            pipeline: Some(pipeline),
            pipeline_options: Some(options),
            job_name: job_name.to_string(),
        })
        .await
        .map_err(|s| {
            anyhow!(
                "the Beam job service at {endpoint} refused to prepare job '{job_name}': {}",
                describe(&s)
            )
        })?
        .into_inner();
    stage_artifacts(&prepared, &artifacts).await.map_err(|e| {
        anyhow!("staging the artifacts of job '{job_name}' at {endpoint} failed: {e:#}")
    })?;
    control
        .check()
        .map_err(|e| anyhow!("{e:#}; the Beam job '{job_name}' was not started"))?;

    let job_id = jobs
        .run(RunJobRequest {
            preparation_id: prepared.preparation_id.clone(),
            retrieval_token: String::new(),
        })
        .await
        .map_err(|s| {
            anyhow!(
                "the Beam job service at {endpoint} refused to run job '{job_name}': {}",
                describe(&s)
            )
        })?
        .into_inner()
        .job_id;
    let messages = Arc::new(Mutex::new(Vec::new()));
    let mut collector = tokio::spawn(collect_messages(
        jobs.clone(),
        job_id.clone(),
        messages.clone(),
    ));

    let state = match follow(&mut jobs, endpoint, &job_id, control, poll).await {
        Ok(state) => state,
        Err(e) => {
            collector.abort();
            return Err(e);
        }
    };
    if tokio::time::timeout(MESSAGE_DRAIN, &mut collector)
        .await
        .is_err()
    {
        collector.abort();
    }
    let messages = std::mem::take(&mut *messages.lock().unwrap_or_else(|e| e.into_inner()));
    let metrics = job_metrics(&mut jobs, &job_id).await;
    Ok(JobOutcome {
        state: state_name(state),
        job_id,
        messages,
        metrics,
    })
}

/// Polls the job's state until it is terminal (returned), cancelling the job
/// when `control` says so. Errors are whole sentences (no context layers),
/// so the reason shows however they are printed.
async fn follow(
    jobs: &mut JobServiceClient<Channel>,
    endpoint: &str,
    job_id: &str,
    control: &RunControl,
    poll: Duration,
) -> Result<i32> {
    let mut failures = 0;
    loop {
        match jobs
            .get_state(GetJobStateRequest {
                job_id: job_id.to_string(),
            })
            .await
        {
            Ok(event) => {
                failures = 0;
                let state = event.into_inner().state;
                if is_terminal(state) {
                    return Ok(state);
                }
            }
            Err(s) if transient(&s) && failures < STATE_RETRIES => failures += 1,
            Err(s) => bail!(
                "cannot follow the Beam job {job_id}: GetState at {endpoint} failed: {}",
                describe(&s)
            ),
        }
        if let Err(reason) = control.check() {
            return Err(cancel(jobs, job_id, reason, poll).await);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Cancels the job and waits (at most [`CANCEL_WAIT`]) for it to end; the
/// error says why and how the job ended.
async fn cancel(
    jobs: &mut JobServiceClient<Channel>,
    job_id: &str,
    reason: anyhow::Error,
    poll: Duration,
) -> anyhow::Error {
    let request = CancelJobRequest {
        job_id: job_id.to_string(),
    };
    let mut state = match jobs.cancel(request).await {
        Ok(r) => r.into_inner().state,
        Err(s) => {
            return anyhow!(
                "{reason:#}; cancelling the Beam job {job_id} failed: {}",
                describe(&s)
            );
        }
    };
    let deadline = Instant::now() + CANCEL_WAIT;
    let interval = poll.min(Duration::from_millis(500));
    while !is_terminal(state) && Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        if let Ok(event) = jobs
            .get_state(GetJobStateRequest {
                job_id: job_id.to_string(),
            })
            .await
        {
            state = event.into_inner().state;
        }
    }
    let name = state_name(state);
    if state == JobState::Cancelled as i32 {
        anyhow!("{reason:#}; the Beam job {job_id} was cancelled (state {name})")
    } else if is_terminal(state) {
        anyhow!("{reason:#}; the Beam job {job_id} was cancelled but ended in state {name}")
    } else {
        anyhow!(
            "{reason:#}; the Beam job {job_id} was cancelled but was still {name} after {} s",
            CANCEL_WAIT.as_secs()
        )
    }
}

/// Collects the job's error messages into `into` until the stream ends
/// (Beam's services end it once the job is terminal).
async fn collect_messages(
    mut jobs: JobServiceClient<Channel>,
    job_id: String,
    into: Arc<Mutex<Vec<String>>>,
) {
    let mut stream = match jobs.get_message_stream(JobMessagesRequest { job_id }).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            tracing::debug!("no job messages: {}", describe(&s));
            return;
        }
    };
    // A message sent while the stream opens can come twice.
    let mut seen = HashSet::new();
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                let Some(MessageOrState::MessageResponse(m)) = response.response else {
                    continue;
                };
                if !m.message_id.is_empty() && !seen.insert(m.message_id.clone()) {
                    continue;
                }
                tracing::debug!(importance = m.importance, "job message: {}", m.message_text);
                if m.importance >= MessageImportance::JobMessageError as i32 {
                    into.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(m.message_text);
                }
            }
            Ok(None) => return,
            Err(s) => {
                tracing::debug!("the job message stream broke: {}", describe(&s));
                return;
            }
        }
    }
}

/// The job's metrics; empty when the service has none to give.
async fn job_metrics(jobs: &mut JobServiceClient<Channel>, job_id: &str) -> Vec<MonitoringInfo> {
    let request = GetJobMetricsRequest {
        job_id: job_id.to_string(),
    };
    match jobs.get_job_metrics(request).await {
        Ok(r) => {
            let m = r.into_inner().metrics.unwrap_or_default();
            if m.committed.is_empty() {
                m.attempted
            } else {
                m.committed
            }
        }
        Err(s) if s.code() == Code::Unimplemented => Vec::new(),
        Err(s) => {
            tracing::warn!("no metrics for Beam job {job_id}: {}", describe(&s));
            Vec::new()
        }
    }
}

/// Runs the service's artifact staging exchange, when it offers one.
///
/// The service sends requests over the stream this client answers: per
/// environment, a `ResolveArtifacts` (answered with the artifacts
/// unchanged) and a `GetArtifact` for each resolved artifact (answered with
/// its bytes in chunks, then an `is_last` response). Embedded and local
/// file artifacts of the pipeline can be served; others fail the staging.
/// The exchange ends when the service closes its side.
async fn stage_artifacts(
    prepared: &PrepareJobResponse,
    artifacts: &[ArtifactInformation],
) -> Result<()> {
    let Some(url) = prepared
        .artifact_staging_endpoint
        .as_ref()
        .map(|d| d.url.as_str())
        .filter(|u| !u.is_empty())
    else {
        return Ok(());
    };
    if prepared.staging_session_token.is_empty() {
        return Ok(());
    }
    let exchange = async {
        let channel = connect(url)
            .await
            .with_context(|| format!("cannot reach the artifact staging service at {url}"))?;
        let mut staging = ArtifactStagingServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(16);
        let send = |message: ArtifactResponseWrapper| {
            let tx = tx.clone();
            async move {
                tx.send(message)
                    .await
                    .map_err(|_| anyhow!("the artifact staging stream closed early"))
            }
        };
        send(ArtifactResponseWrapper {
            staging_token: prepared.staging_session_token.clone(),
            ..Default::default()
        })
        .await?;
        let call = staging
            .reverse_artifact_retrieval_service(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let mut requests = match call {
            Ok(r) => r.into_inner(),
            // A service without the staging API needs nothing when there is nothing to stage.
            Err(s) if s.code() == Code::Unimplemented && artifacts.is_empty() => return Ok(()),
            Err(s) => bail!("the staging service refused the job: {}", describe(&s)),
        };
        loop {
            let request = requests
                .message()
                .await
                .map_err(|s| anyhow!("artifact staging failed: {}", describe(&s)))?;
            let Some(request) = request else {
                return Ok(());
            };
            match request.request {
                Some(ArtifactRequest::ResolveArtifact(r)) => {
                    send(ArtifactResponseWrapper {
                        response: Some(ArtifactResponse::ResolveArtifactResponse(
                            ResolveArtifactsResponse {
                                replacements: r.artifacts,
                            },
                        )),
                        ..Default::default()
                    })
                    .await?;
                }
                Some(ArtifactRequest::GetArtifact(g)) => {
                    let artifact = g.artifact.unwrap_or_default();
                    if !artifacts.contains(&artifact) {
                        bail!(
                            "the staging service asked for an artifact the pipeline does not \
                             declare ({} {})",
                            artifact.type_urn,
                            artifact.role_urn
                        );
                    }
                    for data in artifact_chunks(&artifact)? {
                        send(ArtifactResponseWrapper {
                            response: Some(ArtifactResponse::GetArtifactResponse(
                                GetArtifactResponse { data },
                            )),
                            ..Default::default()
                        })
                        .await?;
                    }
                    send(ArtifactResponseWrapper {
                        is_last: true,
                        response: Some(ArtifactResponse::GetArtifactResponse(
                            GetArtifactResponse::default(),
                        )),
                        ..Default::default()
                    })
                    .await?;
                }
                None => {}
            }
        }
    };
    tokio::time::timeout(STAGING_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            anyhow!(
                "artifact staging did not finish within {} s",
                STAGING_TIMEOUT.as_secs()
            )
        })?
}

/// The bytes of an embedded or local file artifact, in chunks.
fn artifact_chunks(artifact: &ArtifactInformation) -> Result<Vec<Vec<u8>>> {
    let bytes = match artifact.type_urn.as_str() {
        EMBEDDED_ARTIFACT => {
            EmbeddedFilePayload::decode(artifact.type_payload.as_slice())
                .context("an embedded artifact's payload is not an EmbeddedFilePayload")?
                .data
        }
        FILE_ARTIFACT => {
            let path = ArtifactFilePayload::decode(artifact.type_payload.as_slice())
                .context("a file artifact's payload is not an ArtifactFilePayload")?
                .path;
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .with_context(|| format!("cannot read the artifact {path}"))?;
            bytes
        }
        other => bail!("cannot stage an artifact of type {other}: only embedded and file ones"),
    };
    Ok(bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect())
}

/// A channel to `endpoint` (`host:port`, or a URL).
async fn connect(endpoint: &str) -> Result<Channel> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let channel = Endpoint::from_shared(uri)
        .map_err(|e| anyhow!("'{endpoint}' is not HOST:PORT ({e})"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| {
            // tonic's own message is "transport error": the cause is below,
            // and hyper's layers repeat themselves.
            let mut parts: Vec<String> = Vec::new();
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            while let Some(s) = source {
                let part = s.to_string();
                if parts.last() != Some(&part) {
                    parts.push(part);
                }
                source = s.source();
            }
            anyhow!(parts.join(": "))
        })?;
    Ok(channel)
}

/// The port of `host:port`, or `PORT` for the hint.
fn port_of(endpoint: &str) -> &str {
    endpoint
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("PORT")
}

/// A gRPC status in a sentence.
fn describe(s: &Status) -> String {
    format!("{} ({:?})", s.message(), s.code())
}

/// Whether a failed call is worth retrying.
fn transient(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
}

/// Whether a job in this state has ended.
fn is_terminal(state: i32) -> bool {
    matches!(
        JobState::try_from(state),
        Ok(JobState::Done
            | JobState::Failed
            | JobState::Cancelled
            | JobState::Updated
            | JobState::Drained)
    )
}

/// The name of a state in Beam's `JobState` enum.
fn state_name(state: i32) -> String {
    JobState::try_from(state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({state})"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use bigflow_testkit::beam::{BeamJobService, python_pipeline};
    use prost::Message as _;

    use super::*;
    use crate::proto::job_management::{GetJobPipelineRequest, GetJobsRequest};
    use crate::proto::pipeline::ArtifactStagingToRolePayload;

    const POLL: Duration = Duration::from_millis(100);

    /// A pipeline built by Beam's Python SDK with an embedded environment.
    fn python(python: &Path, body: &str) -> Pipeline {
        Pipeline::decode(python_pipeline(python, body, None, &[]).as_slice())
            .expect("Beam's Python wrote no Pipeline")
    }

    /// Beam's job service and Python, or `None` after the missing-peer rule.
    fn peers() -> Option<(BeamJobService, std::path::PathBuf)> {
        let python = bigflow_testkit::beam_python()?;
        Some((BeamJobService::start()?, python))
    }

    /// The sum of the int64 user counter `namespace:name` over transforms.
    fn counter(metrics: &[MonitoringInfo], namespace: &str, name: &str) -> Option<i64> {
        let values: Vec<i64> = metrics
            .iter()
            .filter(|m| m.urn == "beam:metric:user:sum_int64:v1")
            .filter(|m| {
                m.labels.get("NAMESPACE").map(String::as_str) == Some(namespace)
                    && m.labels.get("NAME").map(String::as_str) == Some(name)
            })
            .map(|m| prost::encoding::decode_varint(&mut m.payload.as_slice()).unwrap() as i64)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipeline_that_succeeds_is_done_with_its_counters() {
        let Some((service, py)) = peers() else { return };
        let pipeline = python(
            &py,
            "seen = Metrics.counter('bigflow', 'seen')\n\
             def double(x):\n    seen.inc()\n    return x * 2\n\
             _ = p | beam.Create([1, 2, 3]) | beam.Map(double)",
        );
        let outcome = run_job(
            &service.endpoint(),
            pipeline,
            "succeeds",
            prost_types::Struct::default(),
            &RunControl::default(),
            POLL,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
        assert_eq!(outcome.state, "DONE", "{outcome:?}\n{}", service.log());
        assert!(outcome.job_id.starts_with("succeeds"), "{outcome:?}");
        assert!(outcome.messages.is_empty(), "{:?}", outcome.messages);
        // Beam's local job service implements GetJobMetrics (user metrics, committed).
        assert_eq!(
            counter(&outcome.metrics, "bigflow", "seen"),
            Some(3),
            "{:?}",
            outcome.metrics
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_dofn_ends_failed_with_its_exception_in_the_messages() {
        let Some((service, py)) = peers() else { return };
        let pipeline = python(
            &py,
            "def explode(x):\n    if x == 2:\n        raise ValueError('boom on element %d' % x)\n    return x\n\
             _ = p | beam.Create([1, 2, 3]) | 'Explode' >> beam.Map(explode)",
        );
        let outcome = run_job(
            &service.endpoint(),
            pipeline,
            "fails",
            prost_types::Struct::default(),
            &RunControl::default(),
            POLL,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
        assert_eq!(outcome.state, "FAILED", "{outcome:?}");
        assert!(
            outcome
                .messages
                .iter()
                .any(|m| m.contains("ValueError: boom on element 2")),
            "{:#?}",
            outcome.messages
        );
        // The first error names the transform, as Beam's runner words it.
        assert!(
            outcome.messages[0].starts_with("boom on element 2 [while running 'Explode']"),
            "{:#?}",
            outcome.messages
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_passed_deadline_cancels_the_job() {
        let Some((service, py)) = peers() else { return };
        let pipeline = python(
            &py,
            "def slow(x):\n    time.sleep(60)\n    return x\n\
             _ = p | beam.Create([1]) | beam.Map(slow)",
        );
        let control = RunControl {
            deadline: Some(Instant::now() + Duration::from_secs(3)),
            ..RunControl::default()
        };
        let started = Instant::now();
        let error = run_job(
            &service.endpoint(),
            pipeline,
            "slow",
            prost_types::Struct::default(),
            &control,
            POLL,
        )
        .await
        .expect_err("the deadline passed: the run must fail");
        // The whole story shows without `{:#}`.
        let text = error.to_string();
        assert_eq!(text, format!("{error:#}"));
        assert!(started.elapsed() < Duration::from_secs(30), "{text}");
        assert!(text.contains("deadline passed"), "{text}");
        assert!(text.contains("was cancelled (state CANCELLED)"), "{text}");
        // The service agrees.
        let mut jobs = JobServiceClient::connect(format!("http://{}", service.endpoint()))
            .await
            .unwrap();
        let listed = jobs.get_jobs(GetJobsRequest {}).await.unwrap().into_inner();
        assert_eq!(listed.job_info.len(), 1);
        assert_eq!(listed.job_info[0].state, JobState::Cancelled as i32);
        assert!(text.contains(&listed.job_info[0].job_id), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn staging_serves_the_pipelines_embedded_artifacts() {
        let Some((service, py)) = peers() else { return };
        let mut pipeline = python(&py, "_ = p | beam.Create([1, 2, 3])");
        let artifact = ArtifactInformation {
            type_urn: EMBEDDED_ARTIFACT.into(),
            type_payload: EmbeddedFilePayload {
                data: b"staged by bigflow".to_vec(),
            }
            .encode_to_vec(),
            role_urn: "beam:artifact:role:staging_to:v1".into(),
            role_payload: ArtifactStagingToRolePayload {
                staged_name: "hello.txt".into(),
            }
            .encode_to_vec(),
        };
        let components = pipeline.components.as_mut().unwrap();
        assert_eq!(components.environments.len(), 1);
        for env in components.environments.values_mut() {
            assert!(env.dependencies.is_empty());
            env.dependencies.push(artifact.clone());
        }
        let outcome = run_job(
            &service.endpoint(),
            pipeline,
            "staged",
            prost_types::Struct::default(),
            &RunControl::default(),
            POLL,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
        assert_eq!(outcome.state, "DONE", "{outcome:?}\n{}", service.log());
        // The service replaced the dependency with the file it staged it to.
        let mut jobs = JobServiceClient::connect(format!("http://{}", service.endpoint()))
            .await
            .unwrap();
        let staged = jobs
            .get_pipeline(GetJobPipelineRequest {
                job_id: outcome.job_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap();
        let env = staged.components.unwrap().environments.into_values().next();
        let dependencies = env.unwrap().dependencies;
        assert_eq!(dependencies.len(), 1, "{dependencies:?}");
        assert_eq!(dependencies[0].type_urn, FILE_ARTIFACT);
        assert_eq!(dependencies[0].role_payload, artifact.role_payload);
        let path = ArtifactFilePayload::decode(dependencies[0].type_payload.as_slice())
            .unwrap()
            .path;
        assert_eq!(std::fs::read(&path).unwrap(), b"staged by bigflow");
    }

    #[tokio::test]
    async fn an_unreachable_service_is_named_with_a_hint() {
        let port = bigflow_testkit::free_port();
        let endpoint = format!("127.0.0.1:{port}");
        let error = run_job(
            &endpoint,
            Pipeline::default(),
            "nowhere",
            prost_types::Struct::default(),
            &RunControl::default(),
            POLL,
        )
        .await
        .expect_err("nothing listens there");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot reach the Beam job service at {endpoint}: "
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "local_job_service_main --port {port}) or fix --job_endpoint"
            )),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
        assert_eq!(text.matches("tcp connect error").count(), 1, "{text}");
    }

    #[test]
    fn states_and_ports_are_named() {
        assert!(is_terminal(JobState::Done as i32));
        assert!(is_terminal(JobState::Drained as i32));
        assert!(!is_terminal(JobState::Cancelling as i32));
        assert!(!is_terminal(99));
        assert_eq!(state_name(JobState::Failed as i32), "FAILED");
        assert_eq!(state_name(99), "UNKNOWN(99)");
        assert_eq!(port_of("localhost:8099"), "8099");
        assert_eq!(port_of("http://[::1]:8099/"), "8099");
        assert_eq!(port_of("localhost"), "PORT");
    }
}
