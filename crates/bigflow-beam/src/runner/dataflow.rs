//! The DataflowRunner: a pipeline submitted to Google Cloud Dataflow
//! (Runner v2, portable job submission) with the project's image as the SDK
//! worker container.
//!
//! 1. The graph is translated to a Runner API pipeline whose environment is
//!    the worker image (`beam:env:docker:v1`); the serialized proto is
//!    staged at `<staging_location>/<job name>/pipeline.pb`.
//! 2. `projects.locations.jobs.create` gets a `Job` naming it
//!    (`pipelineUrl`, `pipelineProtoHash` = its SHA-256) with the Runner v2
//!    experiments and one `harness` worker pool whose SDK container is the
//!    image. Every typed option becomes a field of the job. A create that is
//!    retried after a lost answer finds the job already there (409) and
//!    follows it: there is never a second job.
//! 3. The job is polled until it ends; its error messages become the run's
//!    error; user counters come back from its metrics. On the run's deadline
//!    or a cancelled job the Dataflow job is cancelled, and the runner waits
//!    for the cancel to take.
//!
//! Credentials are bigflow's ([`bigflow_gcp::TokenSource`]), from the
//! options' [`Credentials`](crate::options::Credentials) (a BeamJob copies
//! its config's `auth_method`, `vault_*` … there; never sent to Dataflow)
//! or their `bf_` environment variables. The endpoint
//! is Google's unless `--dataflow_endpoint` or `BIGFLOW_DATAFLOW_ENDPOINT`
//! names another (a loopback test double); Cloud Storage honours
//! `STORAGE_EMULATOR_HOST`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bigflow_gcp::retry::ApiError;
use bigflow_gcp::storage::Storage;
use bigflow_gcp::{AuthFlags, AuthMethod, AuthSources, TokenSource, resolve_auth};
use prost::Message;
use serde_json::{Value, json};
use sha2::Digest;

use super::portable::translate;
use super::{PipelineResult, PipelineRunner};
use crate::graph::RunControl;
use crate::metrics::MetricResults;
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;
use crate::proto::pipeline as rapi;

/// Google's Dataflow endpoint.
pub const DATAFLOW_ENDPOINT: &str = "https://dataflow.googleapis.com";

/// Experiments of a Runner v2 portable job.
const EXPERIMENTS: &[&str] = &[
    "use_runner_v2",
    "use_unified_worker",
    "use_portable_job_submission",
    "beam_fn_api",
];

/// Submits pipelines to Dataflow.
#[derive(Debug, Clone)]
pub struct DataflowRunner {
    options: PipelineOptions,
    endpoint: String,
    auth: AuthMethod,
    /// How often the job is polled.
    pub poll: Duration,
}

/// `s` without the trailing `/`.
fn trim(s: &str) -> &str {
    s.trim_end_matches('/')
}

/// `gs://bucket/path` → (`bucket`, `path`).
fn split_gcs(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("gs://")
        .ok_or_else(|| anyhow!("'{url}' is not a gs:// path"))?;
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("'{url}' names no bucket");
    }
    Ok((bucket.to_string(), path.trim_end_matches('/').to_string()))
}

impl DataflowRunner {
    /// The runner the options describe; checks them first.
    pub fn from_options(o: &PipelineOptions) -> Result<DataflowRunner> {
        o.validate()?;
        if o.worker
            .sdk_container_image
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            bail!(
                "DataflowRunner runs this binary in the project's image: set --sdk_container_image (BeamJob: use_docker_image(DockerImage::Project) with the config's docker_repository)"
            );
        }
        let flags = AuthFlags::default();
        let lookup = |k: &str| o.credentials.0.get(k).cloned();
        let auth = resolve_auth(&AuthSources {
            flags: &flags,
            command_line: false,
            env_prefix: "bf_",
            config: &lookup,
            config_name: "the pipeline options",
        })?;
        let endpoint = o
            .extra
            .get("dataflow_endpoint")
            .cloned()
            .or_else(|| {
                std::env::var("BIGFLOW_DATAFLOW_ENDPOINT")
                    .ok()
                    .filter(|e| !e.is_empty())
            })
            .unwrap_or_else(|| DATAFLOW_ENDPOINT.to_string());
        if endpoint.starts_with("http://") && !bigflow_gcp::is_loopback_url(&endpoint) {
            bail!(
                "plain HTTP to the Dataflow endpoint {endpoint} refused: only a loopback test double may be reached without TLS"
            );
        }
        Ok(DataflowRunner {
            options: o.clone(),
            endpoint: trim(&endpoint).to_string(),
            auth,
            poll: Duration::from_secs(10),
        })
    }
}

/// The pipeline options Dataflow receives (`sdkPipelineOptions.options`).
fn submitted_options(
    o: &PipelineOptions,
    job_name: &str,
    pipeline_url: &str,
    hash: &str,
    plan_hash: &str,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in o.to_map() {
        if k == "dataflow_endpoint" {
            continue;
        }
        m.insert(k, Value::String(v));
    }
    m.insert("job_name".into(), json!(job_name));
    m.insert("pipelineUrl".into(), json!(pipeline_url));
    m.insert("pipelineProtoHash".into(), json!(hash));
    m.insert(
        super::portable::harness::PLAN_HASH_OPTION.into(),
        json!(plan_hash),
    );
    m.insert("experiments".into(), json!(EXPERIMENTS));
    m
}

/// The `Job` body of `projects.locations.jobs.create`.
pub(crate) fn job_body(
    o: &PipelineOptions,
    job_name: &str,
    pipeline_url: &str,
    hash: &str,
    plan_hash: &str,
) -> Result<Value> {
    let gc = &o.google_cloud;
    let w = &o.worker;
    let image = w
        .sdk_container_image
        .clone()
        .ok_or_else(|| anyhow!("--sdk_container_image is required"))?;
    let temp = gc
        .temp_location
        .clone()
        .ok_or_else(|| anyhow!("--temp_location is required"))?;
    let mut pool = json!({
        "kind": "harness",
        "workerHarnessContainerImage": image,
        "sdkHarnessContainerImages": [{
            "containerImage": image,
            "environmentId": translate::ENVIRONMENT_ID,
            "capabilities": translate::capabilities(),
        }],
        "autoscalingSettings": {
            "algorithm": match w.autoscaling_algorithm.as_deref() {
                Some("NONE") => "AUTOSCALING_ALGORITHM_NONE",
                _ => "AUTOSCALING_ALGORITHM_BASIC",
            },
        },
    });
    if let Some(m) = &w.machine_type {
        pool["machineType"] = json!(m);
    }
    if let Some(n) = w.num_workers {
        pool["numWorkers"] = json!(n);
    }
    if let Some(n) = w.max_num_workers {
        pool["autoscalingSettings"]["maxNumWorkers"] = json!(n);
    }
    if let Some(d) = w.disk_size_gb {
        pool["diskSizeGb"] = json!(d);
    }
    if let Some(n) = &w.network {
        pool["network"] = json!(n);
    }
    if let Some(s) = &w.subnetwork {
        pool["subnetwork"] = json!(s);
    }
    if let Some(ip) = o.extra.get("use_public_ips") {
        pool["ipConfiguration"] = json!(if ip == "false" {
            "WORKER_IP_PRIVATE"
        } else {
            "WORKER_IP_PUBLIC"
        });
    }
    let mut experiments: Vec<String> = EXPERIMENTS.iter().map(|s| s.to_string()).collect();
    if let Some(extra) = o.extra.get("experiments") {
        for e in extra.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if !experiments.iter().any(|x| x == e) {
                experiments.push(e.to_string());
            }
        }
    }
    let mut environment = json!({
        // Defaults Beam's own client always sends.
        "clusterManagerApiService": "compute.googleapis.com",
        "dataset": "bigquery.googleapis.com/cloud_dataflow",
        "tempStoragePrefix": temp,
        "experiments": experiments,
        "userAgent": {"name": "bigflow", "version": env!("CARGO_PKG_VERSION")},
        "version": {"job_type": "FNAPI_BATCH", "major": "8"},
        "sdkPipelineOptions": {
            "options": submitted_options(o, job_name, pipeline_url, hash, plan_hash),
        },
        "workerPools": [pool],
    });
    if let Some(sa) = &gc.service_account_email {
        environment["serviceAccountEmail"] = json!(sa);
    }
    if let Some(r) = o.extra.get("worker_region") {
        environment["workerRegion"] = json!(r);
    }
    if let Some(z) = o.extra.get("worker_zone").or_else(|| o.extra.get("zone")) {
        environment["workerZone"] = json!(z);
    }
    if let Some(goal) = o.extra.get("flexrs_goal") {
        environment["flexResourceSchedulingGoal"] = json!(match goal.as_str() {
            "COST_OPTIMIZED" => "FLEXRS_COST_OPTIMIZED",
            "SPEED_OPTIMIZED" => "FLEXRS_SPEED_OPTIMIZED",
            other => bail!("--flexrs_goal '{other}' is not COST_OPTIMIZED or SPEED_OPTIMIZED"),
        });
    }
    let mut labels = serde_json::Map::new();
    for l in &gc.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow!("label '{l}' is not key=value"))?;
        labels.insert(k.to_string(), json!(v));
    }
    for (key, option) in [
        ("workflow_id", "bigflow_workflow_id"),
        ("job_id", "bigflow_job_id"),
        ("env", "bigflow_env"),
    ] {
        if let Some(v) = o.extra.get(option) {
            labels.insert(key.to_string(), json!(label_value(v)));
        }
    }
    if let Some(r) = o.extra.get("bigflow_runtime") {
        labels.insert("runtime".into(), json!(label_value(r)));
    }
    let mut job = json!({
        "name": job_name,
        "type": "JOB_TYPE_BATCH",
        "environment": environment,
        // Dataflow's idempotency key for a retried create, as Beam sends it.
        "clientRequestId": client_request_id(),
    });
    if !labels.is_empty() {
        job["labels"] = Value::Object(labels);
    }
    Ok(job)
}

/// A unique request id: the time and a random suffix, as Beam's clients make it.
fn client_request_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    format!("{micros}_{}", crate::runner::random_suffix())
}

/// A label value: lowercase letters, digits, `_` and `-`, at most 63.
fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// A terminal job state.
fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "JOB_STATE_DONE"
            | "JOB_STATE_FAILED"
            | "JOB_STATE_CANCELLED"
            | "JOB_STATE_UPDATED"
            | "JOB_STATE_DRAINED"
    )
}

struct Client {
    http: reqwest::Client,
    auth: TokenSource,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        bigflow_gcp::retry::call_json(&self.auth, &self.http, method, url, body).await
    }

    fn jobs(&self) -> String {
        format!("{}/jobs", self.base)
    }

    /// Creates the job. A 409 means Dataflow knows the job already: a
    /// retried create whose first answer was lost (same `clientRequestId`),
    /// or an active job of the same name; the runner follows that job.
    async fn create(&self, body: &Value) -> Result<Value> {
        match self
            .call(reqwest::Method::POST, &self.jobs(), Some(body))
            .await
        {
            Ok(job) => Ok(job),
            Err(e) if e.is_conflict() => {
                let name = body["name"].as_str().unwrap_or_default();
                let request = body["clientRequestId"].as_str().unwrap_or_default();
                tracing::info!(
                    job_name = name,
                    "the Dataflow job exists already; following it"
                );
                self.find(name, request).await?.ok_or_else(|| {
                    anyhow!("Dataflow says job {name} exists, but it cannot be found: {e}")
                })
            }
            Err(e) => Err(anyhow!("creating the Dataflow job: {e}")),
        }
    }

    /// The job named `name` created by this request (`client_request_id`),
    /// else the active job of that name.
    async fn find(&self, name: &str, client_request_id: &str) -> Result<Option<Value>> {
        let mut page: Option<String> = None;
        let mut active = None;
        loop {
            let mut url = format!(
                "{}?filter=ALL&view=JOB_VIEW_ALL&name={}",
                self.jobs(),
                bigflow_gcp::storage::encode(name)
            );
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", bigflow_gcp::storage::encode(p)));
            }
            let list = self
                .call(reqwest::Method::GET, &url, None)
                .await
                .map_err(|e| anyhow!("listing Dataflow jobs: {e}"))?;
            for job in list["jobs"].as_array().into_iter().flatten() {
                if job["name"] != name {
                    continue;
                }
                if !client_request_id.is_empty() && job["clientRequestId"] == client_request_id {
                    return Ok(Some(job.clone()));
                }
                if active.is_none() && !is_terminal(job["currentState"].as_str().unwrap_or("")) {
                    active = Some(job.clone());
                }
            }
            match list["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_string()),
                _ => return Ok(active),
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, &format!("{}/{id}", self.jobs()), None)
            .await
            .map_err(|e| anyhow!("polling Dataflow job {id}: {e}"))
    }

    async fn cancel(&self, id: &str) -> Result<()> {
        let body = json!({"requestedState": "JOB_STATE_CANCELLED"});
        self.call(
            reqwest::Method::PUT,
            &format!("{}/{id}", self.jobs()),
            Some(&body),
        )
        .await
        .map_err(|e| anyhow!("cancelling Dataflow job {id}: {e}"))?;
        Ok(())
    }

    /// The job's error messages, oldest first.
    async fn errors(&self, id: &str) -> Vec<String> {
        let url = format!(
            "{}/{id}/messages?minimumImportance=JOB_MESSAGE_ERROR",
            self.jobs()
        );
        match self.call(reqwest::Method::GET, &url, None).await {
            Ok(v) => v["jobMessages"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .filter_map(|m| m["messageText"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            Err(e) => vec![format!("(the job's messages could not be read: {e})")],
        }
    }

    /// User counters of the job, keyed `step/name`.
    async fn metrics(&self, id: &str) -> MetricResults {
        let mut results = MetricResults::default();
        let Ok(v) = self
            .call(
                reqwest::Method::GET,
                &format!("{}/{id}/metrics", self.jobs()),
                None,
            )
            .await
        else {
            return results;
        };
        for m in v["metrics"].as_array().into_iter().flatten() {
            let name = &m["name"];
            if name["origin"] != "user" {
                continue;
            }
            // Dataflow reports a counter twice (tentative and committed).
            if name["context"]["tentative"] == "true" {
                continue;
            }
            let step = name["context"]["step"].as_str().unwrap_or("");
            let metric = name["name"].as_str().unwrap_or("");
            let value = match &m["scalar"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            if let Some(v) = value {
                *results
                    .counters
                    .entry(format!("{step}/{metric}"))
                    .or_default() += v;
            }
        }
        results
    }
}

impl PipelineRunner for DataflowRunner {
    fn run(&self, pipeline: Pipeline, control: RunControl) -> Result<PipelineResult> {
        let started = Instant::now();
        let graph = pipeline.take_graph()?;
        let mut o = self.options.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the Dataflow client's runtime")?;
        bigflow_gcp::install_crypto_provider();
        let auth = rt
            .block_on(TokenSource::new(&self.auth))
            .context("Dataflow credentials")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        if o.extra.get(RESOLVE_IMAGE_OPTION).map(String::as_str) == Some("true") {
            let tagged = o.worker.sdk_container_image.clone().unwrap_or_default();
            let pinned = rt.block_on(resolve_image(&http, &auth, &tagged))?;
            tracing::info!(image = %pinned, "worker image pinned by digest");
            o.worker.sdk_container_image = Some(pinned);
        }
        let o = &o;
        let image = o.worker.sdk_container_image.clone().unwrap_or_default();
        let t = translate::translate(&graph, docker_environment(&image))?;
        let labels = t.labels.clone();
        let bytes = t.pipeline.encode_to_vec();
        let hash: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let job_name = o
            .google_cloud
            .job_name
            .clone()
            .unwrap_or_else(|| format!("bigflow-{}", crate::runner::random_suffix()));
        let staging = o
            .google_cloud
            .staging_location
            .clone()
            .or_else(|| o.google_cloud.temp_location.clone())
            .ok_or_else(|| anyhow!("DataflowRunner needs --staging_location or --temp_location"))?;
        let (bucket, prefix) = split_gcs(&staging)?;
        let object = if prefix.is_empty() {
            format!("{job_name}/pipeline.pb")
        } else {
            format!("{prefix}/{job_name}/pipeline.pb")
        };
        let pipeline_url = format!("gs://{bucket}/{object}");
        let body = job_body(o, &job_name, &pipeline_url, &hash, &t.plan_hash)?;
        let project = o.google_cloud.project.clone().unwrap_or_default();
        let region = o.google_cloud.region.clone().unwrap_or_default();
        rt.block_on(async {
            let storage = Storage::new(None, auth.clone())?;
            storage
                .upload(&bucket, &object, bytes, "application/octet-stream")
                .await
                .with_context(|| format!("staging the pipeline at {pipeline_url}"))?;
            let client = Client {
                http,
                auth,
                base: format!(
                    "{}/v1b3/projects/{project}/locations/{region}",
                    self.endpoint
                ),
            };
            let job = client.create(&body).await?;
            let id = job["id"]
                .as_str()
                .ok_or_else(|| anyhow!("Dataflow created a job without an id: {job}"))?
                .to_string();
            tracing::info!(
                job_id = %id,
                job_name = %job_name,
                "Dataflow job created: https://console.cloud.google.com/dataflow/jobs/{region}/{id}?project={project}"
            );
            if control.detach {
                return Ok(PipelineResult {
                    elapsed: started.elapsed(),
                    ..Default::default()
                });
            }
            let mut last = String::new();
            loop {
                if let Err(why) = control.check() {
                    tracing::warn!(job_id = %id, "cancelling the Dataflow job: {why:#}");
                    client.cancel(&id).await?;
                    let deadline = Instant::now() + Duration::from_secs(600);
                    loop {
                        let state = client.get(&id).await?["currentState"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        if is_terminal(&state) {
                            bail!("{why:#}; Dataflow job {id} was cancelled (state {state})");
                        }
                        if Instant::now() > deadline {
                            bail!("{why:#}; Dataflow job {id} was asked to cancel but is still {state} after 10 minutes");
                        }
                        tokio::time::sleep(self.poll.min(Duration::from_secs(5))).await;
                    }
                }
                let job = client.get(&id).await?;
                let state = job["currentState"].as_str().unwrap_or("").to_string();
                if state != last {
                    tracing::info!(job_id = %id, state = %state, "Dataflow job state");
                    last = state.clone();
                }
                if is_terminal(&state) {
                    if state == "JOB_STATE_DONE" {
                        let mut metrics = client.metrics(&id).await;
                        // Steps may be reported by transform id: show labels.
                        metrics.counters = metrics
                            .counters
                            .into_iter()
                            .map(|(k, v)| {
                                let (step, name) = k.rsplit_once('/').unwrap_or(("", &k));
                                let step = labels.get(step).cloned().unwrap_or_else(|| step.to_string());
                                (format!("{step}/{name}"), v)
                            })
                            .collect();
                        return Ok(PipelineResult {
                            metrics,
                            elapsed: started.elapsed(),
                            ..Default::default()
                        });
                    }
                    let errors = client.errors(&id).await;
                    let detail = if errors.is_empty() {
                        "Dataflow reported no error message".to_string()
                    } else {
                        errors.join("\n")
                    };
                    bail!("Dataflow job {id} ended {state}: {detail}");
                }
                // Sleep in short steps so a cancel is noticed quickly.
                let until = Instant::now() + self.poll;
                while Instant::now() < until && control.check().is_ok() {
                    tokio::time::sleep(Duration::from_millis(200).min(self.poll)).await;
                }
            }
        })
    }
}

/// The option asking the runner to pin the worker image's tag to its digest
/// (set by `BeamJob` for `use_docker_image(DockerImage::Project)`).
pub const RESOLVE_IMAGE_OPTION: &str = "bigflow_resolve_image_digest";

/// `image` pinned by digest: `registry/name:tag` becomes
/// `registry/name@sha256:…` as the registry answers for the tag (a loopback
/// registry over plain HTTP, others over HTTPS with the Google token as
/// `oauth2accesstoken`, as Artifact Registry takes it). An image already
/// pinned is returned as it is.
pub(crate) async fn resolve_image(
    http: &reqwest::Client,
    auth: &TokenSource,
    image: &str,
) -> Result<String> {
    if image.contains("@sha256:") {
        return Ok(image.to_string());
    }
    let (registry, rest) = image.split_once('/').ok_or_else(|| {
        anyhow!("worker image '{image}' names no registry (expected registry/repository:tag)")
    })?;
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (rest, "latest"),
    };
    let scheme = if bigflow_gcp::is_loopback_url(registry) {
        "http"
    } else {
        "https"
    };
    let url = format!("{scheme}://{registry}/v2/{name}/manifests/{tag}");
    let mut request = http.head(&url).header(
        "Accept",
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
    );
    if let Some(token) = auth
        .bearer()
        .await
        .map_err(|e| anyhow!("credentials for the registry {registry}: {e}"))?
    {
        request = request.basic_auth("oauth2accesstoken", Some(token.expose()));
    }
    let answer = request
        .send()
        .await
        .with_context(|| format!("asking {registry} for the digest of {image}"))?;
    if !answer.status().is_success() {
        bail!(
            "the registry answered HTTP {} for the worker image {image}; build and push the image (bigflow build-image, deploy-image) or name one that exists",
            answer.status().as_u16()
        );
    }
    let digest = answer
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.starts_with("sha256:"))
        .ok_or_else(|| anyhow!("the registry {registry} gave no digest for {image}"))?;
    Ok(format!("{registry}/{name}@{digest}"))
}

/// The environment that runs this binary in `image`.
fn docker_environment(image: &str) -> rapi::Environment {
    rapi::Environment {
        urn: "beam:env:docker:v1".into(),
        payload: rapi::DockerPayload {
            container_image: image.to_string(),
        }
        .encode_to_vec(),
        ..Default::default()
    }
}

/// The Runner API pipeline Dataflow would get for `pipeline` with workers in `image`.
pub fn pipeline_proto(pipeline: &Pipeline, image: &str) -> Result<rapi::Pipeline> {
    let graph = pipeline.graph.borrow();
    Ok(translate::translate(&graph, docker_environment(image))?.pipeline)
}

/// The options of a job as Dataflow sees them (for `--dry-run` style checks
/// and tests): the `Job` body for `pipeline_url` with hash `hash`.
pub fn job_request(
    o: &PipelineOptions,
    job_name: &str,
    pipeline_url: &str,
    hash: &str,
) -> Result<Value> {
    job_body(o, job_name, pipeline_url, hash, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> PipelineOptions {
        PipelineOptions::from_args([
            "--runner=DataflowRunner",
            "--project=p",
            "--region=europe-west1",
            "--temp_location=gs://b/tmp",
            "--staging_location=gs://b/staging",
            "--sdk_container_image=europe-west1-docker.pkg.dev/p/r/img@sha256:abc",
            "--machine_type=n2-standard-2",
            "--max_num_workers=3",
            "--autoscaling_algorithm=THROUGHPUT_BASED",
            "--labels=team=data",
            "--vault_secret=s3cr3t",
            "--experiments=shuffle_mode=service",
        ])
        .unwrap()
    }

    #[test]
    fn the_job_body_is_a_portable_runner_v2_submission() {
        let mut o = options();
        o.extra
            .insert("bigflow_workflow_id".into(), "wordcount".into());
        o.extra
            .insert("bigflow_runtime".into(), "2020-01-01 00:00:00".into());
        let body = job_body(&o, "wc-1", "gs://b/staging/wc-1/pipeline.pb", "ab12", "ff").unwrap();
        assert_eq!(body["type"], "JOB_TYPE_BATCH");
        let env = &body["environment"];
        assert_eq!(env["tempStoragePrefix"], "gs://b/tmp");
        let exps: Vec<&str> = env["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for e in EXPERIMENTS {
            assert!(exps.contains(e), "{exps:?}");
        }
        assert!(exps.contains(&"shuffle_mode=service"));
        let pools = env["workerPools"].as_array().unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0]["kind"], "harness");
        assert_eq!(pools[0]["machineType"], "n2-standard-2");
        assert_eq!(pools[0]["autoscalingSettings"]["maxNumWorkers"], 3);
        assert_eq!(
            pools[0]["autoscalingSettings"]["algorithm"],
            "AUTOSCALING_ALGORITHM_BASIC"
        );
        let image = "europe-west1-docker.pkg.dev/p/r/img@sha256:abc";
        assert_eq!(
            pools[0]["sdkHarnessContainerImages"][0]["containerImage"],
            image
        );
        assert_eq!(
            pools[0]["sdkHarnessContainerImages"][0]["environmentId"],
            "bigflow"
        );
        let opts = &env["sdkPipelineOptions"]["options"];
        assert_eq!(opts["pipelineUrl"], "gs://b/staging/wc-1/pipeline.pb");
        assert_eq!(opts["pipelineProtoHash"], "ab12");
        assert_eq!(opts["job_name"], "wc-1");
        assert!(
            opts.get("vault_secret").is_none(),
            "credentials never leave: {opts}"
        );
        assert_eq!(body["labels"]["team"], "data");
        assert_eq!(body["labels"]["workflow_id"], "wordcount");
        assert_eq!(body["labels"]["runtime"], "2020-01-01_00_00_00");
    }

    #[test]
    fn a_runner_without_an_image_says_how_to_get_one() {
        let mut o = options();
        o.worker.sdk_container_image = None;
        let e = DataflowRunner::from_options(&o).unwrap_err().to_string();
        assert!(
            e.contains("--sdk_container_image") && e.contains("DockerImage::Project"),
            "{e}"
        );
    }
}
