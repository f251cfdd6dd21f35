//! The SDK harness: this binary as a Beam SDK worker over the Fn API.
//!
//! A runner starts the worker with the container boot contract's flags
//! (`--id`, `--control_endpoint`, `--logging_endpoint`,
//! `--provision_endpoint`, `--artifact_endpoint`, `--semi_persist_dir`) or
//! their environment-variable variant (`CONTROL_API_SERVICE_DESCRIPTOR`,
//! `LOGGING_API_SERVICE_DESCRIPTOR`, `PIPELINE_OPTIONS`, `WORKER_ID`). The
//! worker then
//!
//! 1. reads the pipeline options from the Provision service and gets the
//!    graph: rebuilt by re-running the job's entry point in this binary
//!    (the options name the job), or handed over when the worker runs in
//!    the submitting process; a hash of the plan in the options must match,
//!    so a different binary fails fast;
//! 2. answers the Control stream: `register` stores bundle descriptors,
//!    `process_bundle` runs a bundle on its own thread (bundles run
//!    concurrently), `process_bundle_progress` reports metrics, a split
//!    request is answered with no split (always safe);
//! 3. runs a bundle: the descriptor's transforms are matched to graph nodes
//!    through the same translation the submitter made; data sources decode
//!    elements into the nodes' receivers, collections that leave the stage
//!    are encoded to data sinks (chunked, `is_last` on every sink at the
//!    end), side inputs come from the State API (paged), counters go back as
//!    monitoring infos. A failing DoFn fails its bundle with the transform,
//!    the element and the cause; the worker keeps serving.
//!
//! Every call carries the `worker_id` metadata Beam's runners require.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context as _, Result, anyhow, bail};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::translate::{self, FnPayload, Role, Translation};
use crate::graph::{Env, Graph, Primitive, RunConfig, RunControl, RunState, SpillStats};
use crate::metrics::{MetricResults, Metrics};
use crate::proto::fn_execution as fnapi;
use crate::proto::pipeline as rapi;
use crate::wire::WindowCoder;
use crate::worker_ops::{ByteReceiver, ByteSink};

/// Where a worker finds its runner: the boot contract's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerArgs {
    /// The worker id (sent as `worker_id` metadata).
    pub id: String,
    /// The Control service (`host:port`).
    pub control_endpoint: String,
    /// The Logging service.
    pub logging_endpoint: Option<String>,
    /// The Provision service.
    pub provision_endpoint: Option<String>,
    /// The Artifact retrieval service.
    pub artifact_endpoint: Option<String>,
    /// A directory that outlives the worker.
    pub semi_persist_dir: Option<String>,
    /// The pipeline options as JSON (the environment-variable variant).
    pub pipeline_options: Option<String>,
}

impl WorkerArgs {
    /// The boot flags among `args` (`--flag=value` or `--flag value`);
    /// `None` when there is no `--control_endpoint`, an error for an
    /// unknown flag or a missing value.
    pub fn from_flags(args: &[String]) -> Option<Result<WorkerArgs>> {
        if !args.iter().any(|a| a.starts_with("--control_endpoint")) {
            return None;
        }
        Some(Self::parse_flags(args))
    }

    fn parse_flags(args: &[String]) -> Result<WorkerArgs> {
        let mut w = WorkerArgs::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, value) = match a.split_once('=') {
                Some((f, v)) => (f.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| {
                        anyhow!("worker flag {a} needs a value (e.g. {a}=localhost:50000)")
                    })?;
                    (a.clone(), v.clone())
                }
            };
            match flag.trim_start_matches('-') {
                "id" | "worker_id" => w.id = value,
                "control_endpoint" => w.control_endpoint = value,
                "logging_endpoint" => w.logging_endpoint = Some(value),
                "provision_endpoint" => w.provision_endpoint = Some(value),
                "artifact_endpoint" => w.artifact_endpoint = Some(value),
                "semi_persist_dir" => w.semi_persist_dir = Some(value),
                // Flags of Beam's boot programs that this worker does not need.
                "status_endpoint" | "runner_capabilities" => {}
                other => bail!(
                    "unknown worker flag --{other}; a worker takes --id, --control_endpoint, --logging_endpoint, --provision_endpoint, --artifact_endpoint and --semi_persist_dir"
                ),
            }
        }
        if w.control_endpoint.is_empty() {
            bail!("--control_endpoint is empty");
        }
        Ok(w)
    }

    /// The environment-variable variant (Beam's subprocess harnesses):
    /// `None` without `CONTROL_API_SERVICE_DESCRIPTOR`.
    pub fn from_env() -> Option<Result<WorkerArgs>> {
        let control = std::env::var("CONTROL_API_SERVICE_DESCRIPTOR").ok()?;
        Some((|| {
            Ok(WorkerArgs {
                id: std::env::var("WORKER_ID").unwrap_or_default(),
                control_endpoint: descriptor_url(&control)?,
                logging_endpoint: std::env::var("LOGGING_API_SERVICE_DESCRIPTOR")
                    .ok()
                    .map(|d| descriptor_url(&d))
                    .transpose()?,
                provision_endpoint: None,
                artifact_endpoint: None,
                semi_persist_dir: std::env::var("SEMI_PERSISTENT_DIRECTORY").ok(),
                pipeline_options: std::env::var("PIPELINE_OPTIONS").ok(),
            })
        })())
    }
}

/// The url of an `ApiServiceDescriptor` in text format (`url: "host:port"`), or the text itself.
fn descriptor_url(text: &str) -> Result<String> {
    let t = text.trim();
    if let Some(rest) = t.split("url:").nth(1) {
        let url = rest.trim().trim_matches('"');
        let url = url.split('"').next().unwrap_or(url).trim();
        if url.is_empty() {
            bail!("the service descriptor '{t}' has an empty url");
        }
        return Ok(url.to_string());
    }
    Ok(t.to_string())
}

/// How a worker gets its graph.
pub(crate) enum GraphSource<'a> {
    /// Already built (a worker in the submitting process).
    Ready(Arc<Graph>),
    /// Rebuilt from the pipeline options (a worker process), on the
    /// calling thread.
    Rebuild(Box<dyn FnOnce(&serde_json::Map<String, serde_json::Value>) -> Result<Graph> + 'a>),
}

/// The option that carries the submitter's plan hash.
pub(crate) const PLAN_HASH_OPTION: &str = "bigflow_plan_hash";
/// The option that carries the run's id (temporary file names).
pub(crate) const RUN_ID_OPTION: &str = "bigflow_run_id";

/// Runs a worker until the runner closes the control stream.
pub(crate) fn run_worker(args: WorkerArgs, source: GraphSource<'_>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the worker's runtime")?;
    let options = rt.block_on(pipeline_options(&args))?;
    let logs = rt.block_on(Logger::start(&args.id, args.logging_endpoint.as_deref()));
    // The graph, checked against the submitter's plan (built here, not on
    // the runtime: a job's entry point is ordinary blocking code).
    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        prepare(source, &options, args.id.clone(), logs.clone())
    }))
    .unwrap_or_else(|p| {
        Err(anyhow!(
            "building the pipeline panicked: {}",
            crate::graph::panic_message(&*p)
        ))
    });
    rt.block_on(serve(args, prepared, logs))
}

/// The pipeline options: from the Provision service, or the environment.
async fn pipeline_options(args: &WorkerArgs) -> Result<serde_json::Map<String, serde_json::Value>> {
    let id = &args.id;
    Ok(match (&args.provision_endpoint, &args.pipeline_options) {
        (Some(p), _) => {
            let mut client =
                fnapi::provision_service_client::ProvisionServiceClient::new(connect(p).await?);
            let info = client
                .get_provision_info(with_id(id, fnapi::GetProvisionInfoRequest {}))
                .await
                .with_context(|| format!("provision service at {p}"))?
                .into_inner()
                .info
                .unwrap_or_default();
            info.pipeline_options
                .as_ref()
                .map(options_map)
                .unwrap_or_default()
        }
        (None, Some(json)) => match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(m)) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    if k == "options"
                        && let serde_json::Value::Object(inner) = v
                    {
                        out.extend(inner);
                    } else {
                        out.insert(k, v);
                    }
                }
                out
            }
            _ => bail!("PIPELINE_OPTIONS is not a JSON object"),
        },
        (None, None) => serde_json::Map::new(),
    })
}

/// Options from a `Struct` as plain JSON; Beam's `beam:option:NAME:v1` keys become `NAME`.
pub(crate) fn options_map(s: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in &s.fields {
        let key = k
            .strip_prefix("beam:option:")
            .and_then(|r| r.strip_suffix(":v1"))
            .unwrap_or(k);
        m.insert(key.to_string(), proto_value_to_json(v));
    }
    if let Some(serde_json::Value::Object(inner)) = m.remove("options") {
        for (k, v) in inner {
            m.entry(k).or_insert(v);
        }
    }
    m
}

fn proto_value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::json!(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), proto_value_to_json(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(proto_value_to_json).collect())
        }
    }
}

/// A channel to `url` (`host:port` or a URL).
async fn connect(url: &str) -> Result<Channel> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    Endpoint::from_shared(full.clone())
        .with_context(|| format!("'{url}' is not an endpoint"))?
        .connect_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot connect to the runner at {url}"))
}

/// Adds `worker_id` to a request.
fn with_id<T>(id: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = tonic::metadata::MetadataValue::try_from(id) {
        r.metadata_mut().insert("worker_id", v);
    }
    r
}

async fn serve(args: WorkerArgs, prepared: Result<Worker>, logs: Logger) -> Result<()> {
    let id = args.id.clone();
    let worker = match prepared {
        Ok(w) => Arc::new(w),
        Err(e) => {
            let message = format!("the worker cannot run this pipeline: {e:#}");
            logs.log(fnapi::log_entry::severity::Enum::Error, &message, "", "");
            logs.flush().await;
            // Answer the runner so the job fails with the reason.
            return fail_all(&args, &message).await;
        }
    };
    let mut control = fnapi::beam_fn_control_client::BeamFnControlClient::new(
        connect(&args.control_endpoint).await?,
    )
    .max_decoding_message_size(256 << 20);
    let _ = worker.control.set(control.clone());
    let (tx, rx) = mpsc::channel::<fnapi::InstructionResponse>(64);
    let mut requests = control
        .control(with_id(&id, ReceiverStream::new(rx)))
        .await
        .with_context(|| format!("control stream to {}", args.control_endpoint))?
        .into_inner();
    while let Some(req) = requests.message().await.transpose() {
        let req = match req {
            Ok(r) => r,
            Err(status) => {
                // The runner went away: nothing more to do.
                tracing::debug!(%status, "control stream closed");
                break;
            }
        };
        let w = worker.clone();
        let tx = tx.clone();
        let handle = tokio::runtime::Handle::current();
        match req.request {
            Some(fnapi::instruction_request::Request::ProcessBundle(pb)) => {
                let instruction = req.instruction_id.clone();
                std::thread::Builder::new()
                    .name(format!("bundle-{instruction}"))
                    .spawn(move || {
                        let response = w.process_bundle(&handle, &instruction, &pb);
                        let _ = tx.blocking_send(response);
                    })
                    .context("cannot start a bundle thread")?;
            }
            other => {
                let response = w.answer(&req.instruction_id, other);
                let _ = tx.send(response).await;
            }
        }
    }
    logs.flush().await;
    Ok(())
}

/// Answers every instruction with `message` (a worker that cannot run the pipeline).
async fn fail_all(args: &WorkerArgs, message: &str) -> Result<()> {
    let mut control = fnapi::beam_fn_control_client::BeamFnControlClient::new(
        connect(&args.control_endpoint).await?,
    );
    let (tx, rx) = mpsc::channel::<fnapi::InstructionResponse>(16);
    let mut requests = control
        .control(with_id(&args.id, ReceiverStream::new(rx)))
        .await?
        .into_inner();
    while let Ok(Some(req)) = requests.message().await {
        let _ = tx
            .send(fnapi::InstructionResponse {
                instruction_id: req.instruction_id,
                error: message.to_string(),
                response: None,
            })
            .await;
    }
    bail!("{message}")
}

/// Builds the graph and its translation; checks the plan hash.
fn prepare(
    source: GraphSource<'_>,
    options: &serde_json::Map<String, serde_json::Value>,
    id: String,
    logs: Logger,
) -> Result<Worker> {
    let graph = match source {
        GraphSource::Ready(g) => g,
        GraphSource::Rebuild(f) => Arc::new(f(options)?),
    };
    let translation = translate::translate(&graph, rapi::Environment::default())?;
    if let Some(expected) = options.get(PLAN_HASH_OPTION).and_then(|v| v.as_str())
        && expected != translation.plan_hash
    {
        bail!(
            "this binary builds a different pipeline (plan {}) than the one submitted (plan {expected}); \
             run the worker from the same build of the project, and build pipelines deterministically \
             (no random labels, no input read while building)",
            translation.plan_hash
        );
    }
    let by_label = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.label.clone(), i))
        .collect();
    let run_id = options
        .get(RUN_ID_OPTION)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    Ok(Worker {
        id,
        graph,
        translation,
        by_label,
        run_id,
        data: DataClients::default(),
        states: StateClients::default(),
        logs,
        running: Mutex::new(HashMap::new()),
        descriptors: Mutex::new(HashMap::new()),
        control: OnceLock::new(),
    })
}

struct Worker {
    id: String,
    graph: Arc<Graph>,
    translation: Translation,
    by_label: HashMap<String, usize>,
    run_id: String,
    data: DataClients,
    states: StateClients,
    logs: Logger,
    /// Metrics of running bundles, for progress requests.
    running: Mutex<HashMap<String, Arc<Metrics>>>,
    descriptors: Mutex<HashMap<String, Arc<fnapi::ProcessBundleDescriptor>>>,
    /// Where descriptors that were not registered are fetched from.
    control: OnceLock<fnapi::beam_fn_control_client::BeamFnControlClient<Channel>>,
}

impl Worker {
    /// Answers an instruction other than `process_bundle`.
    fn answer(
        &self,
        instruction: &str,
        request: Option<fnapi::instruction_request::Request>,
    ) -> fnapi::InstructionResponse {
        use fnapi::instruction_request::Request as Rq;
        use fnapi::instruction_response::Response as Rs;
        let ok = |r: Rs| fnapi::InstructionResponse {
            instruction_id: instruction.to_string(),
            error: String::new(),
            response: Some(r),
        };
        match request {
            Some(Rq::Register(r)) => {
                if let Ok(mut d) = self.descriptors.lock() {
                    for desc in r.process_bundle_descriptor {
                        d.insert(desc.id.clone(), Arc::new(desc));
                    }
                }
                ok(Rs::Register(fnapi::RegisterResponse {}))
            }
            Some(Rq::ProcessBundleProgress(p)) => {
                let metrics = self
                    .running
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&p.instruction_id).cloned());
                let infos = metrics
                    .map(|m| self.monitoring_infos(&m.results()))
                    .unwrap_or_default();
                ok(Rs::ProcessBundleProgress(
                    fnapi::ProcessBundleProgressResponse {
                        monitoring_infos: infos,
                        ..Default::default()
                    },
                ))
            }
            // Never splitting is always a correct answer.
            Some(Rq::ProcessBundleSplit(_)) => ok(Rs::ProcessBundleSplit(
                fnapi::ProcessBundleSplitResponse::default(),
            )),
            Some(Rq::FinalizeBundle(_)) => ok(Rs::FinalizeBundle(fnapi::FinalizeBundleResponse {})),
            Some(Rq::MonitoringInfos(_)) => ok(Rs::MonitoringInfos(
                fnapi::MonitoringInfosMetadataResponse::default(),
            )),
            Some(Rq::HarnessMonitoringInfos(_)) => ok(Rs::HarnessMonitoringInfos(
                fnapi::HarnessMonitoringInfosResponse::default(),
            )),
            other => fnapi::InstructionResponse {
                instruction_id: instruction.to_string(),
                error: format!(
                    "the bigflow SDK harness does not support this request: {}",
                    other
                        .map(|o| format!("{o:?}").chars().take(80).collect::<String>())
                        .unwrap_or_else(|| "(empty)".into())
                ),
                response: None,
            },
        }
    }

    /// Runs one bundle and answers it.
    fn process_bundle(
        &self,
        rt: &tokio::runtime::Handle,
        instruction: &str,
        request: &fnapi::ProcessBundleRequest,
    ) -> fnapi::InstructionResponse {
        let metrics = Arc::new(Metrics::default());
        if let Ok(mut r) = self.running.lock() {
            r.insert(instruction.to_string(), metrics.clone());
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_bundle(rt, instruction, request, &metrics)
        }))
        .unwrap_or_else(|p| {
            Err(anyhow!(
                "the bundle panicked: {}",
                crate::graph::panic_message(&*p)
            ))
        });
        if let Ok(mut r) = self.running.lock() {
            r.remove(instruction);
        }
        self.data.forget(instruction, result.is_err());
        match result {
            Ok(()) => fnapi::InstructionResponse {
                instruction_id: instruction.to_string(),
                error: String::new(),
                response: Some(fnapi::instruction_response::Response::ProcessBundle(
                    fnapi::ProcessBundleResponse {
                        monitoring_infos: self.monitoring_infos(&metrics.results()),
                        ..Default::default()
                    },
                )),
            },
            Err(e) => {
                let message = format!("{e:#}");
                self.logs.log(
                    fnapi::log_entry::severity::Enum::Error,
                    &message,
                    instruction,
                    "",
                );
                fnapi::InstructionResponse {
                    instruction_id: instruction.to_string(),
                    error: message,
                    response: None,
                }
            }
        }
    }

    /// User metrics as Beam's monitoring infos.
    fn monitoring_infos(&self, results: &MetricResults) -> Vec<rapi::MonitoringInfo> {
        let ids: HashMap<&str, &str> = self
            .translation
            .labels
            .iter()
            .map(|(id, label)| (label.as_str(), id.as_str()))
            .collect();
        let labels = |key: &str| -> HashMap<String, String> {
            let (step, name) = key.rsplit_once('/').unwrap_or(("", key));
            let transform = ids.get(step).copied().unwrap_or(step);
            [
                ("PTRANSFORM".to_string(), transform.to_string()),
                ("NAMESPACE".to_string(), "bigflow".to_string()),
                ("NAME".to_string(), name.to_string()),
            ]
            .into()
        };
        let mut out = Vec::new();
        for (key, v) in &results.counters {
            let mut payload = Vec::new();
            crate::coders::write_varint(&mut payload, *v as u64);
            out.push(rapi::MonitoringInfo {
                urn: "beam:metric:user:sum_int64:v1".into(),
                r#type: "beam:metrics:sum_int64:v1".into(),
                payload,
                labels: labels(key),
                ..Default::default()
            });
        }
        for (key, d) in &results.distributions {
            let mut payload = Vec::new();
            for v in [d.count, d.sum, d.min, d.max] {
                crate::coders::write_varint(&mut payload, v as u64);
            }
            out.push(rapi::MonitoringInfo {
                urn: "beam:metric:user:distribution_int64:v1".into(),
                r#type: "beam:metrics:distribution_int64:v1".into(),
                payload,
                labels: labels(key),
                ..Default::default()
            });
        }
        out
    }

    /// A bundle descriptor: registered, or fetched from the runner.
    fn descriptor(
        &self,
        rt: &tokio::runtime::Handle,
        id: &str,
    ) -> Result<Arc<fnapi::ProcessBundleDescriptor>> {
        if let Some(d) = self
            .descriptors
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .get(id)
        {
            return Ok(d.clone());
        }
        let mut client = self
            .control
            .get()
            .cloned()
            .ok_or_else(|| anyhow!("bundle descriptor '{id}' was never registered"))?;
        let request = with_id(
            &self.id,
            fnapi::GetProcessBundleDescriptorRequest {
                process_bundle_descriptor_id: id.to_string(),
            },
        );
        let d = rt
            .block_on(client.get_process_bundle_descriptor(request))
            .with_context(|| format!("fetching bundle descriptor '{id}'"))?
            .into_inner();
        let d = Arc::new(d);
        self.descriptors
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(id.to_string(), d.clone());
        Ok(d)
    }

    /// The node a transform of a descriptor runs, and how.
    fn role(&self, id: &str, t: &rapi::PTransform) -> Result<Option<(Role, &'static str)>> {
        let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let payload = |spec: Option<&rapi::FunctionSpec>| -> Result<(usize, String)> {
            let spec = spec.ok_or_else(|| anyhow!("transform '{id}' has no function"))?;
            let p: FnPayload = serde_json::from_slice(&spec.payload)
                .with_context(|| format!("transform '{id}': not a bigflow function"))?;
            let n = self.by_label.get(&p.node).copied().ok_or_else(|| {
                anyhow!(
                    "transform '{id}' names '{}', which this pipeline does not have",
                    p.node
                )
            })?;
            Ok((n, p.role))
        };
        let spec_payload = t.spec.as_ref().map(|s| s.payload.as_slice()).unwrap_or(&[]);
        Ok(match urn {
            "beam:runner:source:v1" | "beam:runner:sink:v1" => None,
            translate::PARDO => {
                let pd = rapi::ParDoPayload::decode(spec_payload)?;
                let (n, role) = payload(pd.do_fn.as_ref())?;
                Some((Role::parse(&role, n)?, translate::PARDO))
            }
            translate::FLATTEN => {
                let out = t
                    .outputs
                    .values()
                    .next()
                    .ok_or_else(|| anyhow!("flatten '{id}' has no output"))?;
                let n = self
                    .translation
                    .pcoll_node
                    .get(out)
                    .copied()
                    .ok_or_else(|| {
                        anyhow!("flatten '{id}' writes '{out}', which this pipeline does not have")
                    })?;
                Some((Role::Flatten(n), translate::FLATTEN))
            }
            translate::PRECOMBINE
            | translate::MERGE_ACCUMULATORS
            | translate::EXTRACT_OUTPUTS
            | translate::COMBINE_GROUPED_VALUES => {
                let cp = rapi::CombinePayload::decode(spec_payload)?;
                let (n, _) = payload(cp.combine_fn.as_ref())?;
                Some((Role::Combine(n), urn_static(urn)))
            }
            other => bail!(
                "transform '{id}' ({}) is a {other}, which the bigflow SDK harness does not run",
                t.unique_name
            ),
        })
    }

    fn run_bundle(
        &self,
        rt: &tokio::runtime::Handle,
        instruction: &str,
        request: &fnapi::ProcessBundleRequest,
        metrics: &Arc<Metrics>,
    ) -> Result<()> {
        let desc = self.descriptor(rt, &request.process_bundle_descriptor_id)?;
        let graph = &*self.graph;
        let mut sources: Vec<Port> = Vec::new();
        let mut sinks: Vec<Port> = Vec::new();
        // Consumers of each collection inside the bundle.
        let mut consumers: HashMap<&str, Vec<(&str, Role, &'static str)>> = HashMap::new();
        let mut runs: HashSet<usize> = HashSet::new();
        for (id, t) in &desc.transforms {
            let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
            if urn == "beam:runner:source:v1" || urn == "beam:runner:sink:v1" {
                let port = fnapi::RemoteGrpcPort::decode(
                    t.spec.as_ref().map(|s| s.payload.as_slice()).unwrap_or(&[]),
                )?;
                let url = port
                    .api_service_descriptor
                    .map(|d| d.url)
                    .ok_or_else(|| anyhow!("data port '{id}' has no endpoint"))?;
                let window = window_coder(&desc.coders, &port.coder_id)?;
                if urn == "beam:runner:source:v1" {
                    let pcoll = t.outputs.values().next().cloned().unwrap_or_default();
                    sources.push(Port {
                        transform: id.clone(),
                        pcoll,
                        url,
                        window,
                    });
                } else {
                    let pcoll = t.inputs.values().next().cloned().unwrap_or_default();
                    sinks.push(Port {
                        transform: id.clone(),
                        pcoll,
                        url,
                        window,
                    });
                }
                continue;
            }
            let Some((role, urn)) = self.role(id, t)? else {
                continue;
            };
            if let Role::ParDo(n) | Role::Flatten(n) = role {
                runs.insert(n);
            }
            let main = t.inputs.get("in").or_else(|| t.inputs.values().next());
            match role {
                Role::Flatten(_) => {
                    for pc in t.inputs.values() {
                        consumers
                            .entry(pc.as_str())
                            .or_default()
                            .push((id.as_str(), role, urn));
                    }
                }
                _ => {
                    if let Some(pc) = main {
                        consumers
                            .entry(pc.as_str())
                            .or_default()
                            .push((id.as_str(), role, urn));
                    }
                }
            }
        }
        // Where each transform's outputs go: a data sink, or a transform in the bundle.
        let sink_of = |pcoll: &str| sinks.iter().find(|p| p.pcoll == pcoll);
        let output_of = |tid: &str| -> Option<&String> {
            desc.transforms
                .get(tid)
                .and_then(|t| t.outputs.values().next())
        };
        // The streams the bundle's output goes to, for the whole bundle: if
        // one ends midway, the bundle fails rather than end its output on
        // a new stream with chunks lost on the old one.
        let mut out_streams: HashMap<&str, mpsc::Sender<fnapi::Elements>> = HashMap::new();
        for p in &sinks {
            if !out_streams.contains_key(p.url.as_str()) {
                out_streams.insert(&p.url, self.data.sender(rt, &self.id, &p.url)?);
            }
        }
        let new_sink = |p: &Port| -> Result<Box<dyn ByteSink>> {
            Ok(Box::new(DataSink {
                instruction: instruction.to_string(),
                transform: p.transform.clone(),
                out: out_streams
                    .get(p.url.as_str())
                    .cloned()
                    .ok_or_else(|| anyhow!("internal: no data stream for '{}'", p.transform))?,
            }))
        };
        // Precombines and shard assignment replace the DirectRunner's sinks.
        let mut replaced: HashMap<usize, (Role, &'static str, &Port)> = HashMap::new();
        for list in consumers.values() {
            for (tid, role, urn) in list {
                match (role, *urn) {
                    (Role::Combine(n), translate::PRECOMBINE) | (Role::WriteShard(n), _) => {
                        let out = output_of(tid).ok_or_else(|| anyhow!("'{tid}' has no output"))?;
                        let port = sink_of(out).ok_or_else(|| {
                            anyhow!("'{tid}' writes '{out}' to no data sink in its bundle")
                        })?;
                        replaced.insert(*n, (*role, urn, port));
                    }
                    _ => {}
                }
            }
        }
        // Side inputs of the bundle's ParDos.
        let mut side_states: HashMap<usize, Arc<dyn Any + Send + Sync>> = HashMap::new();
        let mut written: Option<Vec<(usize, PathBuf)>> = None;
        // The combined values of global combines, by node.
        let mut combined: HashMap<usize, Vec<u8>> = HashMap::new();
        let state_url = desc
            .state_api_service_descriptor
            .as_ref()
            .map(|d| d.url.clone());
        for (id, t) in &desc.transforms {
            let Some((role, _)) = self.role(id, t)? else {
                continue;
            };
            let need_state = match role {
                Role::ParDo(n) => !graph.nodes[n].views.is_empty(),
                Role::Finalize(_) | Role::InjectDefault(_) => true,
                _ => false,
            };
            if !need_state {
                continue;
            }
            let url = state_url.as_deref().ok_or_else(|| {
                anyhow!(
                    "transform '{id}' reads side inputs, but the bundle has no State API endpoint"
                )
            })?;
            let state = self.states.client(rt, &self.id, url)?;
            match role {
                Role::ParDo(n) => {
                    for (k, &v) in graph.nodes[n].views.iter().enumerate() {
                        let bytes = state.iterable_side_input(
                            instruction,
                            id,
                            &translate::side_input_id(k),
                        )?;
                        let collected =
                            graph.nodes[v].codec.side_input(&bytes).with_context(|| {
                                format!(
                                    "side input '{}' of '{}'",
                                    graph.nodes[v].label, t.unique_name
                                )
                            })?;
                        side_states.insert(v, collected);
                    }
                }
                Role::Finalize(_) => {
                    let bytes = state.iterable_side_input(
                        instruction,
                        id,
                        translate::WRITTEN_SIDE_INPUT,
                    )?;
                    let mut rest: &[u8] = &bytes;
                    let mut list = Vec::new();
                    while !rest.is_empty() {
                        let (shard, path) =
                            <(i64, String) as crate::coders::Coded>::decode_wire(&mut rest)
                                .map_err(|e| anyhow!("written shards: {e}"))?;
                        list.push((shard as usize, PathBuf::from(path)));
                    }
                    written = Some(list);
                }
                Role::InjectDefault(n) => {
                    let bytes = state.iterable_side_input(
                        instruction,
                        id,
                        translate::COMBINED_SIDE_INPUT,
                    )?;
                    combined.insert(n, bytes);
                }
                _ => {}
            }
        }
        // The run state of this bundle.
        let tmp = tempfile::Builder::new()
            .prefix("bigflow-worker-")
            .tempdir()
            .context("cannot create the bundle's temporary directory")?;
        let run = RunState {
            config: RunConfig {
                workers: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                memory_budget: 256 << 20,
                temp_dir: tmp.path().to_path_buf(),
                spill: Arc::new(SpillStats::default()),
            },
            states: (0..graph.nodes.len())
                .map(|i| side_states.get(&i).cloned())
                .collect(),
            views: (0..graph.nodes.len()).map(|_| OnceLock::new()).collect(),
            metrics: metrics.clone(),
            control: RunControl::default(),
            failed: Arc::new(AtomicBool::new(false)),
        };
        let mut sinks_by_node: HashMap<usize, Vec<&Port>> = HashMap::new();
        for p in &sinks {
            if let Some(&n) = self.translation.pcoll_node.get(&p.pcoll) {
                sinks_by_node.entry(n).or_default().push(p);
            }
        }
        let wiring = Wiring {
            graph,
            runs: &runs,
            replaced: &replaced,
            sinks: &sinks_by_node,
            new_sink: &new_sink,
        };
        let env = Env {
            graph,
            run: &run,
            stage: Some(&wiring),
        };
        for (&v, _) in side_states.iter() {
            let m = graph.nodes[v]
                .materialize
                .as_ref()
                .ok_or_else(|| anyhow!("internal: '{}' is not a view", graph.nodes[v].label))?;
            let value = m(&env, v)?;
            let _ = run.views[v].set(value);
        }
        // What each data source feeds.
        enum Input {
            Decode(Box<dyn ByteReceiver>),
            /// A source's parts to split into, written to a sink.
            Split(usize, Box<dyn ByteSink>, WindowCoder),
            /// A source's parts to read, collected until the input ends.
            Source(usize, WindowCoder, Vec<u8>, Vec<Vec<u8>>),
            Finalize(usize),
            InjectDefault(usize),
        }
        let mut inputs: HashMap<String, Input> = HashMap::new();
        for p in &sources {
            let list = consumers.get(p.pcoll.as_str()).cloned().unwrap_or_default();
            let input = if let Some(&n) = self.translation.pcoll_node.get(&p.pcoll) {
                Input::Decode(graph.nodes[n].codec.source(&env, n, p.window)?)
            } else {
                let Some(&(tid, role, urn)) = list.first() else {
                    bail!("data source '{}' feeds nothing in its bundle", p.transform);
                };
                let lifted = |n: usize| {
                    graph.nodes[n].combine.clone().ok_or_else(|| {
                        anyhow!("internal: '{}' has no combine", graph.nodes[n].label)
                    })
                };
                match (role, urn) {
                    (Role::Split(n), _) => {
                        let out = output_of(tid).ok_or_else(|| anyhow!("'{tid}' has no output"))?;
                        let port = sink_of(out)
                            .ok_or_else(|| anyhow!("'{tid}' writes '{out}' to no data sink"))?;
                        Input::Split(n, new_sink(port)?, port.window)
                    }
                    (Role::Source(n), _) => Input::Source(n, p.window, Vec::new(), Vec::new()),
                    (Role::Finalize(n), _) => Input::Finalize(n),
                    (Role::InjectDefault(n), _) => Input::InjectDefault(n),
                    (Role::WriteShards(n), _) => {
                        let out = output_of(tid).ok_or_else(|| anyhow!("'{tid}' has no output"))?;
                        let port = sink_of(out)
                            .ok_or_else(|| anyhow!("'{tid}' writes '{out}' to no data sink"))?;
                        Input::Decode(write_shards(
                            graph,
                            n,
                            &self.run_id,
                            p.window,
                            port.window,
                            new_sink(port)?,
                        )?)
                    }
                    (Role::Combine(n), translate::MERGE_ACCUMULATORS) => {
                        let out = output_of(tid).ok_or_else(|| anyhow!("'{tid}' has no output"))?;
                        let then = match sink_of(out) {
                            Some(port) => Some(new_sink(port)?),
                            None => None,
                        };
                        Input::Decode(lifted(n)?.merge(&env, n, p.window, then)?)
                    }
                    (Role::Combine(n), translate::EXTRACT_OUTPUTS) => {
                        Input::Decode(lifted(n)?.extract(&env, n, p.window)?)
                    }
                    (Role::Combine(n), translate::COMBINE_GROUPED_VALUES) => {
                        Input::Decode(lifted(n)?.grouped(&env, n, p.window)?)
                    }
                    (role, urn) => bail!(
                        "data source '{}' feeds '{tid}' ({urn}, {role:?}), which the harness cannot start from data",
                        p.transform
                    ),
                }
            };
            inputs.insert(p.transform.clone(), input);
        }
        // Feed the inputs until every source has sent its last chunk.
        let queue = self.data.queue(
            rt,
            &self.id,
            instruction,
            sources.iter().map(|p| p.url.as_str()),
        )?;
        let mut open: HashSet<String> = sources.iter().map(|p| p.transform.clone()).collect();
        let mut result: Result<()> = Ok(());
        while !open.is_empty() {
            let item = match queue.recv() {
                Ok(item) => item,
                Err(_) => {
                    result = Err(anyhow!(
                        "the data stream closed before the bundle's input ended (waiting for {})",
                        open.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    break;
                }
            };
            let step = match item {
                Inbound::Closed(why) => Err(anyhow!("the data stream failed: {why}")),
                Inbound::Data(d) => {
                    let Some(input) = inputs.get_mut(&d.transform_id) else {
                        continue;
                    };
                    let res = match input {
                        Input::Decode(r) => {
                            if d.data.is_empty() {
                                Ok(())
                            } else {
                                r.receive(&d.data)
                            }
                        }
                        Input::Split(n, sink, w) if !d.data.is_empty() => {
                            split_source(&env, *n, &mut **sink, *w)
                        }
                        Input::Source(_, w, carry, parts) => {
                            collect_parts(*w, carry, parts, &d.data)
                        }
                        Input::InjectDefault(n) if !d.data.is_empty() => {
                            let values = combined.remove(n).unwrap_or_default();
                            match &graph.nodes[*n].combine {
                                Some(c) => c.inject_default(&env, *n, &values),
                                None => Err(anyhow!(
                                    "internal: '{}' has no combine",
                                    graph.nodes[*n].label
                                )),
                            }
                        }
                        Input::Finalize(n) if !d.data.is_empty() => {
                            finalize(&env, *n, &self.run_id, written.take().unwrap_or_default())
                        }
                        _ => Ok(()),
                    };
                    if d.is_last {
                        open.remove(&d.transform_id);
                        match input {
                            Input::Decode(r) => res.and_then(|()| r.finish()),
                            Input::Source(n, _, carry, parts) => res.and_then(|()| {
                                if !carry.is_empty() {
                                    bail!("the data channel ended inside a source part");
                                }
                                run_source_parts(&env, *n, parts)
                            }),
                            _ => res,
                        }
                    } else {
                        res
                    }
                }
            };
            if let Err(e) = step {
                result = Err(e);
                break;
            }
        }
        for (_, input) in inputs.iter_mut() {
            if let Input::Decode(r) = input {
                r.teardown();
            }
        }
        drop(inputs);
        result?;
        // A precombine writes its last accumulators at teardown.
        if run.failed.load(Ordering::Relaxed) {
            bail!("a combiner could not write its accumulators (see the worker's log)");
        }
        // Every sink ends, even one that received nothing.
        for p in &sinks {
            let out = &out_streams[p.url.as_str()];
            if !self.data.is_live(&p.url, out) {
                bail!(
                    "the data stream to {} closed while the bundle ran; its output to '{}' may be incomplete",
                    p.url,
                    p.transform
                );
            }
            out.blocking_send(fnapi::Elements {
                data: vec![fnapi::elements::Data {
                    instruction_id: instruction.to_string(),
                    transform_id: p.transform.clone(),
                    data: Vec::new(),
                    is_last: true,
                }],
                timers: Vec::new(),
            })
            .map_err(|_| anyhow!("the data stream to {} closed", p.url))?;
        }
        Ok(())
    }
}

fn urn_static(urn: &str) -> &'static str {
    match urn {
        translate::PARDO => translate::PARDO,
        translate::PRECOMBINE => translate::PRECOMBINE,
        translate::MERGE_ACCUMULATORS => translate::MERGE_ACCUMULATORS,
        translate::EXTRACT_OUTPUTS => translate::EXTRACT_OUTPUTS,
        translate::COMBINE_GROUPED_VALUES => translate::COMBINE_GROUPED_VALUES,
        _ => "",
    }
}

/// The window coder of a `windowed_value` coder.
fn window_coder(coders: &HashMap<String, rapi::Coder>, id: &str) -> Result<WindowCoder> {
    let c = coders
        .get(id)
        .ok_or_else(|| anyhow!("coder '{id}' is not in the bundle descriptor"))?;
    let urn = c.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
    if urn != "beam:coder:windowed_value:v1" {
        bail!("data port coder '{id}' is {urn}, not a windowed value");
    }
    let w = c
        .component_coder_ids
        .get(1)
        .and_then(|w| coders.get(w))
        .and_then(|w| w.spec.as_ref())
        .map(|s| s.urn.as_str())
        .unwrap_or("");
    match w {
        "beam:coder:global_window:v1" => Ok(WindowCoder::Global),
        "beam:coder:interval_window:v1" => Ok(WindowCoder::Interval),
        other => bail!("window coder {other} is not supported by the bigflow SDK harness"),
    }
}

/// The root operation of a source node.
fn source_root(env: &Env, node: usize) -> Result<Arc<dyn crate::graph::RootOp>> {
    env.graph.nodes[node].root.clone().ok_or_else(|| {
        anyhow!(
            "internal: '{}' is not a source",
            env.graph.nodes[node].label
        )
    })
}

/// Splits a source into parts (its impulse arrived): `(index, part)` to `out`.
fn split_source(env: &Env, node: usize, out: &mut dyn ByteSink, window: WindowCoder) -> Result<()> {
    let parts = source_root(env, node)?.split(env)?;
    let mut buf = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let wv = crate::window::WindowedValue::global((i as i64, crate::coders::Bytes(part)));
        crate::worker_ops::encode_windowed(&wv, window, &mut buf)?;
    }
    if !buf.is_empty() {
        out.send(buf)?;
    }
    Ok(())
}

/// Decodes grouped `(index, parts)` of a source from a chunk.
fn collect_parts(
    window: WindowCoder,
    carry: &mut Vec<u8>,
    parts: &mut Vec<Vec<u8>>,
    data: &[u8],
) -> Result<()> {
    carry.extend_from_slice(data);
    let buf = std::mem::take(carry);
    let mut rest: &[u8] = &buf;
    while !rest.is_empty() {
        let mut attempt = rest;
        match crate::wire::WireValue::<(i64, Vec<crate::coders::Bytes>)>::decode(
            window,
            &mut attempt,
        ) {
            Ok(wv) => {
                rest = attempt;
                parts.extend(wv.value.1.into_iter().map(|b| b.0));
            }
            Err(_) => break,
        }
    }
    *carry = rest.to_vec();
    Ok(())
}

/// Reads a source's parts, in parallel on the worker's cores.
fn run_source_parts(env: &Env, node: usize, parts: &mut Vec<Vec<u8>>) -> Result<()> {
    let parts = std::mem::take(parts);
    source_root(env, node)?.run_parts(node, env, &parts)
}

/// Renames a file sink's written shards into place and emits their names.
/// Every group has been written when this runs (the written shards are its
/// side input), so a shard no group wrote had no lines: it is written empty,
/// as the DirectRunner writes it.
fn finalize(env: &Env, node: usize, run_id: &str, written: Vec<(usize, PathBuf)>) -> Result<()> {
    let n = &env.graph.nodes[node];
    let writer = n
        .writer
        .as_ref()
        .ok_or_else(|| anyhow!("internal: '{}' is not a file sink", n.label))?;
    // A retried shard may appear twice with the same file: keep one.
    let mut seen = HashMap::new();
    for (shard, path) in written {
        seen.insert(shard, path);
    }
    for shard in 0..writer.write.num_shards {
        if seen.contains_key(&shard) {
            continue;
        }
        let dir = shard_temp_dir(writer, run_id);
        crate::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("shard-{shard}"));
        writer.write_shard(shard, &path, &mut || Ok(None), &RunControl::default())?;
        seen.insert(shard, path);
    }
    let temps: Vec<(usize, PathBuf)> = seen.into_iter().collect();
    let dirs: HashSet<PathBuf> = temps
        .iter()
        .filter_map(|(_, p)| p.parent().map(PathBuf::from))
        .collect();
    let names = writer.finalize(&temps)?;
    for d in dirs {
        let _ = crate::fs::remove_dir_all(&d);
    }
    let mut out = env.output::<String>(node)?;
    out.start_bundle()?;
    for name in names {
        out.receive(crate::window::WindowedValue::global(name))?;
    }
    out.finish_bundle()?;
    out.teardown();
    Ok(())
}

/// Where a run's workers write a file sink's temporary shards.
fn shard_temp_dir(writer: &crate::io::ShardWriter, run_id: &str) -> PathBuf {
    writer.dir().join(format!(
        ".bigflow-temp-{run_id}-{}",
        translate::sanitize(&writer.label)
    ))
}

/// Decodes `(shard, lines)` groups, writes each shard's temporary file and
/// emits `(shard, path)`.
fn write_shards(
    graph: &Graph,
    node: usize,
    run_id: &str,
    window: WindowCoder,
    out_window: WindowCoder,
    out: Box<dyn ByteSink>,
) -> Result<Box<dyn ByteReceiver>> {
    let writer = graph.nodes[node]
        .writer
        .clone()
        .ok_or_else(|| anyhow!("internal: '{}' is not a file sink", graph.nodes[node].label))?;
    let dir = shard_temp_dir(&writer, run_id);
    Ok(Box::new(ShardFiles {
        writer,
        dir,
        window,
        out_window,
        out,
        carry: Vec::new(),
        written: Vec::new(),
    }))
}

struct ShardFiles {
    writer: Arc<crate::io::ShardWriter>,
    dir: PathBuf,
    window: WindowCoder,
    out_window: WindowCoder,
    out: Box<dyn ByteSink>,
    carry: Vec<u8>,
    written: Vec<u8>,
}

static ATTEMPT: AtomicU64 = AtomicU64::new(0);

impl ByteReceiver for ShardFiles {
    fn receive(&mut self, data: &[u8]) -> Result<()> {
        self.carry.extend_from_slice(data);
        let buf = std::mem::take(&mut self.carry);
        let mut rest: &[u8] = &buf;
        while !rest.is_empty() {
            let mut attempt = rest;
            let wv = match crate::wire::WireValue::<(i64, Vec<String>)>::decode(
                self.window,
                &mut attempt,
            ) {
                Ok(wv) => wv,
                Err(_) => break,
            };
            rest = attempt;
            let (shard, mut lines) = wv.value;
            let shard = usize::try_from(shard).map_err(|_| anyhow!("shard {shard}"))?;
            lines.sort_unstable();
            crate::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            // Written under a unique name, then renamed: a retried bundle
            // never leaves a half-written shard under the shard's name.
            let n = ATTEMPT.fetch_add(1, Ordering::Relaxed);
            let part = self
                .dir
                .join(format!("shard-{shard}.{}-{n}.part", std::process::id()));
            let path = self.dir.join(format!("shard-{shard}"));
            let mut it = lines.into_iter();
            let mut next = || Ok(it.next().map(String::into_bytes));
            self.writer
                .write_shard(shard, &part, &mut next, &RunControl::default())?;
            crate::fs::rename(&part, &path)
                .with_context(|| format!("cannot move {} to {}", part.display(), path.display()))?;
            let wv =
                crate::window::WindowedValue::global((shard as i64, path.display().to_string()));
            crate::worker_ops::encode_windowed(&wv, self.out_window, &mut self.written)?;
        }
        self.carry = rest.to_vec();
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        if !self.carry.is_empty() {
            bail!(
                "the data channel ended inside a group of '{}'",
                self.writer.label
            );
        }
        if !self.written.is_empty() {
            self.out.send(std::mem::take(&mut self.written))?;
        }
        Ok(())
    }
    fn teardown(&mut self) {}
}

/// A data port of a bundle: a source or sink transform on a data channel.
struct Port {
    transform: String,
    pcoll: String,
    url: String,
    window: WindowCoder,
}

/// The consumers of the graph that one bundle runs.
struct Wiring<'a> {
    graph: &'a Graph,
    runs: &'a HashSet<usize>,
    /// Consumers replaced by a lifted phase writing to a data sink.
    replaced: &'a HashMap<usize, (Role, &'static str, &'a Port)>,
    /// Data sinks reading each node's collection.
    sinks: &'a HashMap<usize, Vec<&'a Port>>,
    new_sink: &'a (dyn Fn(&Port) -> Result<Box<dyn ByteSink>> + Sync),
}

impl crate::graph::StageWiring for Wiring<'_> {
    fn consumer(
        &self,
        env: &Env,
        _node: usize,
        consumer: usize,
    ) -> Result<Option<Option<Box<dyn Any + Send>>>> {
        let c = &self.graph.nodes[consumer];
        if matches!(c.primitive, Primitive::Identity | Primitive::Reshuffle) {
            return Ok(Some(Some(c.codec.passthrough(env, consumer)?)));
        }
        if self.runs.contains(&consumer) {
            return Ok(Some(None));
        }
        match self.replaced.get(&consumer) {
            Some((Role::Combine(_), _, port)) => {
                let lifted = c
                    .combine
                    .as_ref()
                    .ok_or_else(|| anyhow!("internal: '{}' has no combine", c.label))?;
                Ok(Some(Some(lifted.precombine(
                    env,
                    port.window,
                    (self.new_sink)(port)?,
                ))))
            }
            Some((Role::WriteShard(_), _, port)) => {
                let writer = c
                    .writer
                    .clone()
                    .ok_or_else(|| anyhow!("internal: '{}' is not a file sink", c.label))?;
                let r: Box<dyn crate::graph::Receiver<String>> = Box::new(ShardAssign {
                    writer,
                    window: port.window,
                    buf: Vec::new(),
                    out: (self.new_sink)(port)?,
                });
                Ok(Some(Some(Box::new(r))))
            }
            _ => Ok(None),
        }
    }

    fn outputs(&self, _env: &Env, node: usize) -> Result<Vec<Box<dyn Any + Send>>> {
        let Some(ports) = self.sinks.get(&node) else {
            return Ok(Vec::new());
        };
        let codec = &self.graph.nodes[node].codec;
        ports
            .iter()
            .map(|p| Ok(codec.sink(p.window, (self.new_sink)(p)?)))
            .collect()
    }
}

/// Pairs each line of a file sink with its shard.
struct ShardAssign {
    writer: Arc<crate::io::ShardWriter>,
    window: WindowCoder,
    buf: Vec<u8>,
    out: Box<dyn ByteSink>,
}

impl crate::graph::Receiver<String> for ShardAssign {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: crate::window::WindowedValue<String>) -> Result<()> {
        let shard = self.writer.shard_of(wv.value.as_bytes()) as i64;
        let kv = crate::window::WindowedValue::global((shard, wv.value));
        crate::worker_ops::encode_windowed(&kv, self.window, &mut self.buf)?;
        if self.buf.len() >= 1 << 20 {
            self.out.send(std::mem::take(&mut self.buf))?;
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out.send(std::mem::take(&mut self.buf))?;
        }
        Ok(())
    }
    fn teardown(&mut self) {}
}

// ---- Data channels ----

/// What a bundle receives from its data channels.
enum Inbound {
    Data(fnapi::elements::Data),
    Closed(String),
}

type Queue = (
    std::sync::mpsc::Sender<Inbound>,
    Option<std::sync::mpsc::Receiver<Inbound>>,
);

/// One data stream per endpoint: an outbound sender and a router that
/// hands inbound chunks to their bundle (buffering those that arrive before
/// the bundle starts). A stream that ends is forgotten, so later bundles
/// open a new one.
#[derive(Default)]
struct DataClients {
    streams: Arc<Mutex<HashMap<String, mpsc::Sender<fnapi::Elements>>>>,
    queues: Arc<Mutex<HashMap<String, Queue>>>,
}

/// Forgets the stream to `url` if it is still the one `weak` sends on.
fn forget_stream(
    streams: &Mutex<HashMap<String, mpsc::Sender<fnapi::Elements>>>,
    url: &str,
    weak: &mpsc::WeakSender<fnapi::Elements>,
) {
    if let (Ok(mut s), Some(mine)) = (streams.lock(), weak.upgrade())
        && s.get(url).is_some_and(|c| c.same_channel(&mine))
    {
        s.remove(url);
    }
}

impl DataClients {
    /// The sender of the stream to `url`, opening it on first use.
    fn sender(
        &self,
        rt: &tokio::runtime::Handle,
        worker: &str,
        url: &str,
    ) -> Result<mpsc::Sender<fnapi::Elements>> {
        let mut streams = self.streams.lock().map_err(|_| anyhow!("poisoned"))?;
        if let Some(s) = streams.get(url) {
            return Ok(s.clone());
        }
        let (tx, rx) = mpsc::channel::<fnapi::Elements>(64);
        let queues = self.queues.clone();
        let (all_streams, weak) = (self.streams.clone(), tx.downgrade());
        let url_owned = url.to_string();
        let worker = worker.to_string();
        // Connect now (errors surface here); the call itself is made in the
        // background, because a server may answer its headers only once it
        // has something to send.
        let channel = rt.block_on(connect(&url_owned))?;
        rt.spawn(async move {
            let mut client = fnapi::beam_fn_data_client::BeamFnDataClient::new(channel)
                .max_decoding_message_size(256 << 20);
            let mut inbound = match client.data(with_id(&worker, ReceiverStream::new(rx))).await {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    forget_stream(&all_streams, &url_owned, &weak);
                    if let Ok(q) = queues.lock() {
                        for (s, _) in q.values() {
                            let _ = s.send(Inbound::Closed(format!(
                                "data stream to {url_owned}: {status}"
                            )));
                        }
                    }
                    return;
                }
            };
            let why = loop {
                match inbound.message().await {
                    Ok(Some(elements)) => {
                        let Ok(mut q) = queues.lock() else {
                            break "poisoned".to_string();
                        };
                        for d in elements.data {
                            let entry = q.entry(d.instruction_id.clone()).or_insert_with(|| {
                                let (s, r) = std::sync::mpsc::channel();
                                (s, Some(r))
                            });
                            let _ = entry.0.send(Inbound::Data(d));
                        }
                    }
                    Ok(None) => break "the runner closed it".to_string(),
                    Err(status) => break status.to_string(),
                }
            };
            // Forgotten before the bundles hear of it: a bundle that starts
            // later opens a new stream (see `queue`).
            forget_stream(&all_streams, &url_owned, &weak);
            if let Ok(q) = queues.lock() {
                for (s, _) in q.values() {
                    let _ = s.send(Inbound::Closed(why.clone()));
                }
            }
        });
        streams.insert(url.to_string(), tx.clone());
        Ok(tx)
    }

    /// The inbound queue of `instruction`, opening the streams it reads.
    fn queue<'u>(
        &self,
        rt: &tokio::runtime::Handle,
        worker: &str,
        instruction: &str,
        urls: impl Iterator<Item = &'u str>,
    ) -> Result<std::sync::mpsc::Receiver<Inbound>> {
        let urls: Vec<&str> = urls.collect();
        for _ in 0..3 {
            let mut senders = Vec::new();
            for u in &urls {
                senders.push((*u, self.sender(rt, worker, u)?));
            }
            // A stream that ended since told only the queues there were:
            // open it again. A stream still known here announces its end
            // only after this queue exists (it is forgotten first, under
            // this lock).
            let streams = self.streams.lock().map_err(|_| anyhow!("poisoned"))?;
            if !senders
                .iter()
                .all(|(u, s)| streams.get(*u).is_some_and(|c| c.same_channel(s)))
            {
                continue;
            }
            let mut q = self.queues.lock().map_err(|_| anyhow!("poisoned"))?;
            let entry = q.entry(instruction.to_string()).or_insert_with(|| {
                let (s, r) = std::sync::mpsc::channel();
                (s, Some(r))
            });
            return entry
                .1
                .take()
                .ok_or_else(|| anyhow!("instruction '{instruction}' is already running"));
        }
        bail!("the data stream to {} keeps closing", urls.join(", "))
    }

    /// Whether `sender` still sends on the stream to `url`.
    fn is_live(&self, url: &str, sender: &mpsc::Sender<fnapi::Elements>) -> bool {
        self.streams
            .lock()
            .is_ok_and(|s| s.get(url).is_some_and(|c| c.same_channel(sender)))
    }

    /// Drops what is left of a finished bundle's queue. A failed bundle's
    /// input may still be arriving: its queue stays, closed, so what comes
    /// is dropped instead of buffered for a bundle that never starts.
    fn forget(&self, instruction: &str, failed: bool) {
        if let Ok(mut q) = self.queues.lock() {
            if failed {
                let (s, _) = std::sync::mpsc::channel();
                q.insert(instruction.to_string(), (s, None));
            } else {
                q.remove(instruction);
            }
        }
    }
}

/// Sends a bundle's output chunks for one sink transform.
struct DataSink {
    instruction: String,
    transform: String,
    out: mpsc::Sender<fnapi::Elements>,
}

impl ByteSink for DataSink {
    fn send(&mut self, chunk: Vec<u8>) -> Result<()> {
        self.out
            .blocking_send(fnapi::Elements {
                data: vec![fnapi::elements::Data {
                    instruction_id: self.instruction.clone(),
                    transform_id: self.transform.clone(),
                    data: chunk,
                    is_last: false,
                }],
                timers: Vec::new(),
            })
            .map_err(|_| anyhow!("the data stream closed while sending '{}'", self.transform))
    }
}

// ---- State ----

/// One State stream per endpoint; responses are matched to requests by id.
/// A stream that ends is forgotten, so later bundles open a new one.
#[derive(Default)]
struct StateClients {
    clients: Arc<Mutex<HashMap<String, Arc<StateClient>>>>,
}

struct StateClient {
    out: mpsc::Sender<fnapi::StateRequest>,
    pending:
        Arc<Mutex<HashMap<String, std::sync::mpsc::Sender<Result<fnapi::StateResponse, String>>>>>,
    /// Set (under the `pending` lock) once the stream has ended.
    closed: Arc<AtomicBool>,
    next: AtomicU64,
}

impl StateClients {
    fn client(
        &self,
        rt: &tokio::runtime::Handle,
        worker: &str,
        url: &str,
    ) -> Result<Arc<StateClient>> {
        let mut clients = self.clients.lock().map_err(|_| anyhow!("poisoned"))?;
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let (tx, rx) = mpsc::channel::<fnapi::StateRequest>(64);
        let pending: Arc<
            Mutex<HashMap<String, std::sync::mpsc::Sender<Result<fnapi::StateResponse, String>>>>,
        > = Arc::default();
        let url_owned = url.to_string();
        let worker = worker.to_string();
        let channel = rt.block_on(connect(&url_owned))?;
        let p = pending.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let (all, is_closed) = (self.clients.clone(), closed.clone());
        rt.spawn(async move {
            // Forgets this stream and fails the requests waiting on it.
            let end = |why: String| {
                if let Ok(mut c) = all.lock()
                    && c.get(&url_owned)
                        .is_some_and(|c| Arc::ptr_eq(&c.pending, &p))
                {
                    c.remove(&url_owned);
                }
                if let Ok(mut m) = p.lock() {
                    is_closed.store(true, Ordering::SeqCst);
                    for (_, s) in m.drain() {
                        let _ = s.send(Err(why.clone()));
                    }
                }
            };
            let mut client = fnapi::beam_fn_state_client::BeamFnStateClient::new(channel)
                .max_decoding_message_size(256 << 20);
            let mut inbound = match client
                .state(with_id(&worker, ReceiverStream::new(rx)))
                .await
            {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    end(format!("state stream to {url_owned}: {status}"));
                    return;
                }
            };
            let why = loop {
                match inbound.message().await {
                    Ok(Some(r)) => {
                        if let Some(s) = p.lock().ok().and_then(|mut m| m.remove(&r.id)) {
                            let _ = s.send(Ok(r));
                        }
                    }
                    Ok(None) => break "the runner closed the state stream".to_string(),
                    Err(status) => break status.to_string(),
                }
            };
            end(why);
        });
        let c = Arc::new(StateClient {
            out: tx,
            pending,
            closed,
            next: AtomicU64::new(0),
        });
        clients.insert(url.to_string(), c.clone());
        Ok(c)
    }
}

impl StateClient {
    /// All pages of an iterable side input in the global window.
    fn iterable_side_input(
        &self,
        instruction: &str,
        transform: &str,
        side_input: &str,
    ) -> Result<Vec<u8>> {
        let key = fnapi::StateKey {
            r#type: Some(fnapi::state_key::Type::IterableSideInput(
                fnapi::state_key::IterableSideInput {
                    transform_id: transform.to_string(),
                    side_input_id: side_input.to_string(),
                    window: Vec::new(),
                },
            )),
        };
        let mut data = Vec::new();
        let mut token = Vec::new();
        loop {
            let id = format!("s{}", self.next.fetch_add(1, Ordering::Relaxed));
            let (s, r) = std::sync::mpsc::channel();
            {
                let mut pending = self.pending.lock().map_err(|_| anyhow!("poisoned"))?;
                // A request after the end would wait for an answer that never comes.
                if self.closed.load(Ordering::SeqCst) {
                    bail!("the state stream closed");
                }
                pending.insert(id.clone(), s);
            }
            self.out
                .blocking_send(fnapi::StateRequest {
                    id,
                    instruction_id: instruction.to_string(),
                    state_key: Some(key.clone()),
                    request: Some(fnapi::state_request::Request::Get(fnapi::StateGetRequest {
                        continuation_token: token.clone(),
                    })),
                })
                .map_err(|_| anyhow!("the state stream closed"))?;
            let response = r
                .recv_timeout(std::time::Duration::from_secs(600))
                .map_err(|_| {
                    anyhow!("the runner did not answer a state request within 10 minutes")
                })?
                .map_err(|e| anyhow!("the state stream failed: {e}"))?;
            if !response.error.is_empty() {
                bail!(
                    "side input '{side_input}' of '{transform}': {}",
                    response.error
                );
            }
            let Some(fnapi::state_response::Response::Get(get)) = response.response else {
                bail!(
                    "side input '{side_input}' of '{transform}': the runner answered with no data"
                );
            };
            data.extend_from_slice(&get.data);
            if get.continuation_token.is_empty() {
                return Ok(data);
            }
            token = get.continuation_token;
        }
    }
}

// ---- Logging ----

/// Sends log entries to the runner's Logging service (and keeps them on
/// stderr when there is none).
#[derive(Clone)]
struct Logger {
    out: Option<mpsc::Sender<fnapi::LogEntry>>,
}

impl Logger {
    fn disabled() -> Logger {
        Logger { out: None }
    }

    async fn start(worker: &str, url: Option<&str>) -> Logger {
        let Some(url) = url else {
            return Logger::disabled();
        };
        let Ok(channel) = connect(url).await else {
            eprintln!(
                "warning: cannot reach the runner's logging service at {url}; logs stay on stderr"
            );
            return Logger::disabled();
        };
        let (tx, mut rx) = mpsc::channel::<fnapi::LogEntry>(1024);
        // What the process logs through `tracing` goes there too.
        super::fn_logging::connect(tx.clone());
        let (lists_tx, lists_rx) = mpsc::channel::<fnapi::log_entry::List>(16);
        let mut client = fnapi::beam_fn_logging_client::BeamFnLoggingClient::new(channel);
        let worker = worker.to_string();
        tokio::spawn(async move {
            let call = client.logging(with_id(&worker, ReceiverStream::new(lists_rx)));
            let batcher = async move {
                while let Some(first) = rx.recv().await {
                    let mut log_entries = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        log_entries.push(more);
                    }
                    if lists_tx
                        .send(fnapi::log_entry::List { log_entries })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            };
            let (r, ()) = tokio::join!(call, batcher);
            if let Ok(resp) = r {
                let mut s = resp.into_inner();
                while let Ok(Some(_)) = s.message().await {}
            }
        });
        Logger { out: Some(tx) }
    }

    fn log(
        &self,
        severity: fnapi::log_entry::severity::Enum,
        message: &str,
        instruction: &str,
        transform: &str,
    ) {
        eprintln!("{message}");
        let Some(out) = &self.out else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = out.try_send(fnapi::LogEntry {
            severity: severity as i32,
            timestamp: Some(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
            }),
            message: message.to_string(),
            instruction_id: instruction.to_string(),
            transform_id: transform.to_string(),
            log_location: "bigflow".into(),
            thread: std::thread::current().name().unwrap_or("").to_string(),
            ..Default::default()
        });
    }

    async fn flush(&self) {
        // Entries already queued are sent by the batcher; give it a moment.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
