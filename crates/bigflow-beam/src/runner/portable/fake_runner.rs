//! An in-process Beam runner for testing the SDK harness over the Fn API.
//!
//! [`FakeRunner`] serves Control (the instruction stream and
//! `GetProcessBundleDescriptor`), Data and State on loopback ports, each
//! recording what the worker sends and the `worker_id` of every call. A
//! test starts our harness ([`harness::run_worker`]) on a thread with a
//! graph built by the crate's Pipeline API, hands it bundle descriptors made
//! from the graph's translation ([`stage`]), and plays the runner's part:
//! sends instructions and data, answers State requests (in pages), drops
//! streams, and checks the answers. Every wait has a deadline, so a harness
//! that hangs fails its test instead of stalling the suite.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::harness::{self, GraphSource, WorkerArgs};
use super::translate::{self, Translation};
use crate::coders::Coded;
use crate::graph::Graph;
use crate::proto::fn_execution as fnapi;
use crate::proto::fn_execution::beam_fn_control_server::{BeamFnControl, BeamFnControlServer};
use crate::proto::fn_execution::beam_fn_data_server::{BeamFnData, BeamFnDataServer};
use crate::proto::fn_execution::beam_fn_state_server::{BeamFnState, BeamFnStateServer};
use crate::proto::pipeline as rapi;
use crate::window::WindowedValue;
use crate::wire::{WindowCoder, WireValue};

/// How long any wait of a test lasts before it fails.
const WAIT: Duration = Duration::from_secs(20);
/// The id the fake runner gives its worker.
const WORKER_ID: &str = "fake-worker-7";

type Outbound<T> = mpsc::Sender<Result<T, Status>>;

/// What the runner has seen, shared by its services.
#[derive(Default)]
struct Seen {
    /// Each call the worker made, with its `worker_id` metadata.
    calls: Vec<(&'static str, Option<String>)>,
    /// Instruction responses by instruction id.
    responses: HashMap<String, fnapi::InstructionResponse>,
    /// Data the worker sent, with the index of the data stream it came on.
    data: Vec<(usize, fnapi::elements::Data)>,
    /// State requests the worker made.
    state_requests: Vec<fnapi::StateRequest>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    /// Served by `GetProcessBundleDescriptor`.
    descriptors: Mutex<HashMap<String, fnapi::ProcessBundleDescriptor>>,
    /// The instructions for the (one) control stream, until it opens.
    control_out: Mutex<Option<mpsc::Receiver<Result<fnapi::InstructionRequest, Status>>>>,
    /// The outbound half of each data stream the worker opened; `None` once dropped.
    data_streams: Mutex<Vec<Option<Outbound<fnapi::Elements>>>>,
    /// The outbound half of each state stream the worker opened; `None` once dropped.
    state_streams: Mutex<Vec<Option<Outbound<fnapi::StateResponse>>>>,
    /// Iterable side inputs by (transform id, side input id): their pages.
    side_inputs: Mutex<HashMap<(String, String), Vec<Vec<u8>>>>,
}

impl Shared {
    fn call(&self, name: &'static str, metadata: &tonic::metadata::MetadataMap) {
        let id = metadata
            .get("worker_id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.seen.lock().unwrap().calls.push((name, id));
    }
}

struct Control(Arc<Shared>);

#[tonic::async_trait]
impl BeamFnControl for Control {
    type ControlStream = ReceiverStream<Result<fnapi::InstructionRequest, Status>>;

    async fn control(
        &self,
        request: Request<Streaming<fnapi::InstructionResponse>>,
    ) -> Result<Response<Self::ControlStream>, Status> {
        self.0.call("control", request.metadata());
        let out = self
            .0
            .control_out
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| Status::already_exists("the control stream is already open"))?;
        let mut inbound = request.into_inner();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                shared
                    .seen
                    .lock()
                    .unwrap()
                    .responses
                    .insert(r.instruction_id.clone(), r);
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }

    async fn get_process_bundle_descriptor(
        &self,
        request: Request<fnapi::GetProcessBundleDescriptorRequest>,
    ) -> Result<Response<fnapi::ProcessBundleDescriptor>, Status> {
        self.0
            .call("get_process_bundle_descriptor", request.metadata());
        let id = request.into_inner().process_bundle_descriptor_id;
        self.0
            .descriptors
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no bundle descriptor '{id}'")))
    }
}

struct Data(Arc<Shared>);

#[tonic::async_trait]
impl BeamFnData for Data {
    type DataStream = ReceiverStream<Result<fnapi::Elements, Status>>;

    async fn data(
        &self,
        request: Request<Streaming<fnapi::Elements>>,
    ) -> Result<Response<Self::DataStream>, Status> {
        self.0.call("data", request.metadata());
        let (tx, rx) = mpsc::channel(64);
        let stream = {
            let mut streams = self.0.data_streams.lock().unwrap();
            streams.push(Some(tx));
            streams.len() - 1
        };
        let mut inbound = request.into_inner();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(elements)) = inbound.message().await {
                let mut seen = shared.seen.lock().unwrap();
                for d in elements.data {
                    seen.data.push((stream, d));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct State(Arc<Shared>);

#[tonic::async_trait]
impl BeamFnState for State {
    type StateStream = ReceiverStream<Result<fnapi::StateResponse, Status>>;

    async fn state(
        &self,
        request: Request<Streaming<fnapi::StateRequest>>,
    ) -> Result<Response<Self::StateStream>, Status> {
        self.0.call("state", request.metadata());
        let (tx, rx) = mpsc::channel(64);
        self.0.state_streams.lock().unwrap().push(Some(tx.clone()));
        let mut inbound = request.into_inner();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                shared.seen.lock().unwrap().state_requests.push(r.clone());
                let response = answer_state(&shared, &r);
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A page of an iterable side input; the continuation token is the next page's index.
fn answer_state(shared: &Shared, r: &fnapi::StateRequest) -> fnapi::StateResponse {
    let fail = |error: String| fnapi::StateResponse {
        id: r.id.clone(),
        error,
        response: None,
    };
    let key = match r.state_key.as_ref().and_then(|k| k.r#type.as_ref()) {
        Some(fnapi::state_key::Type::IterableSideInput(s)) => {
            (s.transform_id.clone(), s.side_input_id.clone())
        }
        other => return fail(format!("the fake runner serves no state {other:?}")),
    };
    let Some(fnapi::state_request::Request::Get(get)) = &r.request else {
        return fail("the fake runner only answers gets".into());
    };
    let page = if get.continuation_token.is_empty() {
        0
    } else {
        match String::from_utf8_lossy(&get.continuation_token).parse::<usize>() {
            Ok(p) => p,
            Err(_) => return fail("not a continuation token of the fake runner".into()),
        }
    };
    let side_inputs = shared.side_inputs.lock().unwrap();
    let Some(pages) = side_inputs.get(&key) else {
        return fail(format!("no side input {key:?}"));
    };
    let Some(data) = pages.get(page) else {
        return fail(format!("side input {key:?} has no page {page}"));
    };
    let continuation_token = if page + 1 < pages.len() {
        (page + 1).to_string().into_bytes()
    } else {
        Vec::new()
    };
    fnapi::StateResponse {
        id: r.id.clone(),
        error: String::new(),
        response: Some(fnapi::state_response::Response::Get(
            fnapi::StateGetResponse {
                continuation_token,
                data: data.clone(),
            },
        )),
    }
}

/// Serves one service on a free loopback port; returns the address.
macro_rules! serve {
    ($service:expr, $servers:expr) => {{
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let address = listener.local_addr().expect("the port's address");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let (stop, stopped) = oneshot::channel::<()>();
        let service = $service;
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(service, incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        $servers.push((stop, task));
        address
    }};
}

/// A runner on loopback: Control, Data and State servers and what they saw.
pub(crate) struct FakeRunner {
    shared: Arc<Shared>,
    control: Option<mpsc::Sender<Result<fnapi::InstructionRequest, Status>>>,
    control_address: SocketAddr,
    data_address: SocketAddr,
    state_address: SocketAddr,
    servers: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeRunner {
    /// Starts the servers (in the current tokio runtime).
    pub(crate) async fn start() -> FakeRunner {
        let shared = Arc::new(Shared::default());
        let (control, control_out) = mpsc::channel(64);
        *shared.control_out.lock().unwrap() = Some(control_out);
        let mut servers = Vec::new();
        let control_address = serve!(BeamFnControlServer::new(Control(shared.clone())), servers);
        let data_address = serve!(
            BeamFnDataServer::new(Data(shared.clone())).max_decoding_message_size(64 << 20),
            servers
        );
        let state_address = serve!(BeamFnStateServer::new(State(shared.clone())), servers);
        FakeRunner {
            shared,
            control: Some(control),
            control_address,
            data_address,
            state_address,
            servers,
        }
    }

    /// The Data endpoint, `host:port`.
    pub(crate) fn data_url(&self) -> String {
        self.data_address.to_string()
    }

    /// The State endpoint, `host:port`.
    pub(crate) fn state_url(&self) -> String {
        self.state_address.to_string()
    }

    /// Starts our harness on a thread, connected to this runner, running `graph`.
    pub(crate) fn start_worker(&self, graph: Arc<Graph>) -> std::thread::JoinHandle<Result<()>> {
        let args = WorkerArgs {
            id: WORKER_ID.into(),
            control_endpoint: self.control_address.to_string(),
            ..Default::default()
        };
        std::thread::Builder::new()
            .name("fake-runner-worker".into())
            .spawn(move || harness::run_worker(args, GraphSource::Ready(graph)))
            .expect("a worker thread")
    }

    /// A descriptor the worker may fetch with `GetProcessBundleDescriptor`.
    pub(crate) fn add_descriptor(&self, d: fnapi::ProcessBundleDescriptor) {
        self.shared
            .descriptors
            .lock()
            .unwrap()
            .insert(d.id.clone(), d);
    }

    /// Serves an iterable side input in these pages.
    pub(crate) fn serve_side_input(&self, transform: &str, side_input: &str, pages: Vec<Vec<u8>>) {
        self.shared
            .side_inputs
            .lock()
            .unwrap()
            .insert((transform.into(), side_input.into()), pages);
    }

    /// Sends an instruction on the control stream.
    pub(crate) async fn instruct(&self, id: &str, request: fnapi::instruction_request::Request) {
        let control = self.control.as_ref().expect("the control stream is open");
        tokio::time::timeout(
            WAIT,
            control.send(Ok(fnapi::InstructionRequest {
                instruction_id: id.into(),
                request: Some(request),
            })),
        )
        .await
        .expect("the control stream takes the instruction in time")
        .expect("the control stream is open");
    }

    /// Asks the worker to process a bundle of the descriptor `descriptor`.
    pub(crate) async fn process_bundle(&self, id: &str, descriptor: &str) {
        self.instruct(
            id,
            fnapi::instruction_request::Request::ProcessBundle(fnapi::ProcessBundleRequest {
                process_bundle_descriptor_id: descriptor.into(),
                ..Default::default()
            }),
        )
        .await;
    }

    /// Waits until `f` finds something in what the runner saw.
    async fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(t) = f(&self.shared.seen.lock().unwrap()) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the fake runner waited {WAIT:?} for {what} in vain; responses: {:?}",
                self.shared.seen.lock().unwrap().responses
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The worker's answer to instruction `id` (waits for it).
    pub(crate) async fn response(&self, id: &str) -> fnapi::InstructionResponse {
        self.wait_for(&format!("the answer to '{id}'"), |s| {
            s.responses.get(id).cloned()
        })
        .await
    }

    /// The worker's answer to instruction `id`, if it came.
    pub(crate) fn try_response(&self, id: &str) -> Option<fnapi::InstructionResponse> {
        self.shared.seen.lock().unwrap().responses.get(id).cloned()
    }

    /// The newest data stream that is open (waits for the worker to open one).
    async fn data_stream(&self) -> Outbound<fnapi::Elements> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(Some(tx)) = self.shared.data_streams.lock().unwrap().last() {
                return tx.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the worker opened no data stream in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends `elements` on the newest open data stream.
    pub(crate) async fn send_elements(&self, elements: fnapi::Elements) {
        let stream = self.data_stream().await;
        tokio::time::timeout(WAIT, stream.send(Ok(elements)))
            .await
            .expect("the data stream takes the elements in time")
            .expect("the data stream is open");
    }

    /// Sends a chunk of a bundle's input to the data source `transform`.
    pub(crate) async fn send(&self, instruction: &str, transform: &str, data: Vec<u8>, last: bool) {
        self.send_elements(fnapi::Elements {
            data: vec![data_message(instruction, transform, data, last)],
            timers: Vec::new(),
        })
        .await;
    }

    /// Ends the newest data stream with an error, as a runner that goes away.
    pub(crate) async fn drop_data_stream(&self) {
        let stream = self.data_stream().await;
        {
            let mut streams = self.shared.data_streams.lock().unwrap();
            for s in streams.iter_mut() {
                if s.as_ref().is_some_and(|s| s.same_channel(&stream)) {
                    *s = None;
                }
            }
        }
        let why = Status::unavailable("the fake runner dropped the data stream");
        tokio::time::timeout(WAIT, stream.send(Err(why)))
            .await
            .expect("the data stream takes the error in time")
            .expect("the data stream is still open on the server");
    }

    /// Ends the newest state stream with an error.
    pub(crate) async fn drop_state_stream(&self) {
        let stream = self
            .shared
            .state_streams
            .lock()
            .unwrap()
            .iter_mut()
            .rev()
            .find_map(Option::take)
            .expect("an open state stream");
        let why = Status::unavailable("the fake runner dropped the state stream");
        tokio::time::timeout(WAIT, stream.send(Err(why)))
            .await
            .expect("the state stream takes the error in time")
            .expect("the state stream is still open on the server");
    }

    /// How many state streams the worker opened.
    pub(crate) fn state_streams_opened(&self) -> usize {
        self.shared.state_streams.lock().unwrap().len()
    }

    /// How many data streams the worker opened.
    pub(crate) fn data_streams_opened(&self) -> usize {
        self.shared.data_streams.lock().unwrap().len()
    }

    /// What the worker sent to the data sink `transform` for `instruction`
    /// so far, in order.
    pub(crate) fn data_for(
        &self,
        instruction: &str,
        transform: &str,
    ) -> Vec<fnapi::elements::Data> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .data
            .iter()
            .filter(|(_, d)| d.instruction_id == instruction && d.transform_id == transform)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// All the worker sent to the data sink `transform` for `instruction`,
    /// once it sent the last chunk (waits for it).
    pub(crate) async fn output(
        &self,
        instruction: &str,
        transform: &str,
    ) -> Vec<fnapi::elements::Data> {
        self.wait_for(
            &format!("the end of '{transform}' of '{instruction}'"),
            |s| {
                s.data
                    .iter()
                    .any(|(_, d)| {
                        d.instruction_id == instruction && d.transform_id == transform && d.is_last
                    })
                    .then_some(())
            },
        )
        .await;
        self.data_for(instruction, transform)
    }

    /// The state requests the worker made.
    pub(crate) fn state_requests(&self) -> Vec<fnapi::StateRequest> {
        self.shared.seen.lock().unwrap().state_requests.clone()
    }

    /// The calls the worker made, with their `worker_id` metadata.
    pub(crate) fn calls(&self) -> Vec<(&'static str, Option<String>)> {
        self.shared.seen.lock().unwrap().calls.clone()
    }

    /// Closes the control stream, waits for the worker to end and stops the servers.
    pub(crate) async fn stop(mut self, worker: std::thread::JoinHandle<Result<()>>) {
        self.control = None;
        let deadline = Instant::now() + WAIT;
        while !worker.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the worker did not end within {WAIT:?} of the control stream closing"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker
            .join()
            .expect("the worker thread did not panic")
            .expect("the worker ends cleanly when the runner closes the control stream");
        for (stop, mut task) in std::mem::take(&mut self.servers) {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for FakeRunner {
    fn drop(&mut self) {
        // A failed test: close the control stream (the worker ends) and the servers.
        self.control = None;
        for (stop, task) in self.servers.drain(..) {
            let _ = stop.send(());
            task.abort();
        }
    }
}

fn data_message(
    instruction: &str,
    transform: &str,
    data: Vec<u8>,
    is_last: bool,
) -> fnapi::elements::Data {
    fnapi::elements::Data {
        instruction_id: instruction.into(),
        transform_id: transform.into(),
        data,
        is_last,
    }
}

/// A process bundle descriptor running `transforms` of a translated graph:
/// each collection they read that no transform of the stage writes comes
/// from a data source `source-<pcollection>`, each collection they write
/// that none of them reads goes to a data sink `sink-<pcollection>` (both
/// on `data_url`, coded as windowed values); side inputs come from
/// `state_url`.
pub(crate) fn stage(
    translation: &Translation,
    id: &str,
    transforms: &[&str],
    data_url: &str,
    state_url: &str,
) -> fnapi::ProcessBundleDescriptor {
    let components = translation
        .pipeline
        .components
        .clone()
        .expect("a translated pipeline has components");
    let mut d = fnapi::ProcessBundleDescriptor {
        id: id.into(),
        pcollections: components.pcollections.clone(),
        windowing_strategies: components.windowing_strategies.clone(),
        coders: components.coders.clone(),
        environments: components.environments.clone(),
        state_api_service_descriptor: Some(rapi::ApiServiceDescriptor {
            url: state_url.into(),
            authentication: None,
        }),
        ..Default::default()
    };
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for &tid in transforms {
        let t = components
            .transforms
            .get(tid)
            .unwrap_or_else(|| panic!("the translation has no transform '{tid}'"))
            .clone();
        let side_inputs = match &t.spec {
            Some(s) if s.urn == translate::PARDO => {
                rapi::ParDoPayload::decode(s.payload.as_slice())
                    .expect("a ParDo payload")
                    .side_inputs
                    .into_keys()
                    .collect()
            }
            _ => Vec::new(),
        };
        reads.extend(
            t.inputs
                .iter()
                .filter(|(k, _)| !side_inputs.contains(k))
                .map(|(_, pc)| pc.clone()),
        );
        writes.extend(t.outputs.values().cloned());
        d.transforms.insert(tid.to_string(), t);
    }
    let mut port = |pc: &str, source: bool| {
        let coll = &components.pcollections[pc];
        let window_coder =
            &components.windowing_strategies[&coll.windowing_strategy_id].window_coder_id;
        let coder = format!("wv-{}", coll.coder_id);
        d.coders.insert(
            coder.clone(),
            rapi::Coder {
                spec: Some(rapi::FunctionSpec {
                    urn: "beam:coder:windowed_value:v1".into(),
                    payload: Vec::new(),
                }),
                component_coder_ids: vec![coll.coder_id.clone(), window_coder.clone()],
            },
        );
        let payload = fnapi::RemoteGrpcPort {
            api_service_descriptor: Some(rapi::ApiServiceDescriptor {
                url: data_url.into(),
                authentication: None,
            }),
            coder_id: coder,
        }
        .encode_to_vec();
        let (tid, urn, inputs, outputs) = if source {
            (
                format!("source-{pc}"),
                "beam:runner:source:v1",
                HashMap::new(),
                HashMap::from([("out".to_string(), pc.to_string())]),
            )
        } else {
            (
                format!("sink-{pc}"),
                "beam:runner:sink:v1",
                HashMap::from([("in".to_string(), pc.to_string())]),
                HashMap::new(),
            )
        };
        d.transforms.insert(
            tid.clone(),
            rapi::PTransform {
                unique_name: tid,
                spec: Some(rapi::FunctionSpec {
                    urn: urn.into(),
                    payload,
                }),
                inputs,
                outputs,
                ..Default::default()
            },
        );
    };
    for pc in &reads {
        if !writes.contains(pc) {
            port(pc, true);
        }
    }
    for pc in &writes {
        if !reads.contains(pc) {
            port(pc, false);
        }
    }
    d
}

/// `values` as windowed values in the global window.
pub(crate) fn encode<T: Coded + Clone>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        crate::worker_ops::encode_windowed(
            &WindowedValue::global(v.clone()),
            WindowCoder::Global,
            &mut out,
        )
        .expect("a global window encodes");
    }
    out
}

/// The windowed values of `bytes`, which must hold whole elements only.
pub(crate) fn decode<T: Coded>(mut bytes: &[u8]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let wv = WireValue::<T>::decode(WindowCoder::Global, &mut bytes)
            .map_err(|e| anyhow!("{e} ({} bytes left)", bytes.len()))?;
        out.push(wv.value);
    }
    Ok(out)
}

/// The values a data sink received: all chunks before the last, decoded.
pub(crate) fn values<T: Coded>(chunks: &[fnapi::elements::Data]) -> Vec<T> {
    let all: Vec<u8> = chunks.iter().flat_map(|d| d.data.clone()).collect();
    decode(&all).expect("the output decodes")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::dofn::{Context, DoFn};
    use crate::options::PipelineOptions;
    use crate::pipeline::{ParDo, Pipeline};
    use crate::side::IterableView;

    use fnapi::instruction_request::Request as Rq;
    use fnapi::instruction_response::Response as Rs;

    /// The graph `build` makes, and its translation.
    fn graph(build: impl FnOnce(&Pipeline)) -> (Arc<Graph>, Translation) {
        let p = Pipeline::new(PipelineOptions::default());
        build(&p);
        let graph = std::mem::take(&mut *p.graph.borrow_mut());
        let translation =
            translate::translate(&graph, rapi::Environment::default()).expect("it translates");
        (Arc::new(graph), translation)
    }

    /// `Nums` (fed by the runner) → `Double`.
    fn doubling() -> (Arc<Graph>, Translation) {
        graph(|p| {
            p.create("Nums", vec![0i64]).map("Double", |x: &i64| x * 2);
        })
    }

    const SOURCE: &str = "source-Nums-out";
    const DOUBLED: &str = "sink-Double-out";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_request_is_answered_with_no_split_and_the_bundle_completes() {
        let runner = FakeRunner::start().await;
        let (g, t) = doubling();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Double"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner
            .send("b1", SOURCE, encode(&[1i64, 2, 3]), false)
            .await;
        runner
            .instruct(
                "split-1",
                Rq::ProcessBundleSplit(fnapi::ProcessBundleSplitRequest {
                    instruction_id: "b1".into(),
                    desired_splits: HashMap::from([(
                        SOURCE.to_string(),
                        fnapi::process_bundle_split_request::DesiredSplit {
                            fraction_of_remainder: 0.5,
                            allowed_split_points: Vec::new(),
                            estimated_input_elements: 6,
                        },
                    )]),
                }),
            )
            .await;
        let split = runner.response("split-1").await;
        assert_eq!(split.error, "");
        let Some(Rs::ProcessBundleSplit(s)) = split.response else {
            panic!("not a split response: {split:?}");
        };
        assert_eq!(s, fnapi::ProcessBundleSplitResponse::default(), "no split");
        assert!(
            runner.try_response("b1").is_none(),
            "the bundle cannot end before its input does"
        );
        runner.send("b1", SOURCE, encode(&[4i64, 5, 6]), true).await;
        let done = runner.response("b1").await;
        assert_eq!(done.error, "");
        assert!(
            matches!(done.response, Some(Rs::ProcessBundle(_))),
            "{done:?}"
        );
        let out = runner.output("b1", DOUBLED).await;
        assert_eq!(values::<i64>(&out), [2, 4, 6, 8, 10, 12]);
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_that_receives_nothing_still_gets_one_last_message() {
        let runner = FakeRunner::start().await;
        let (g, t) = graph(|p| {
            p.create("Nums", vec![0i64])
                .filter("Big", |x: &i64| *x > 100);
        });
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Big"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        // Elements that all fall out, and a bundle with no input at all.
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64, 2, 3]), true).await;
        runner.process_bundle("b2", "d1").await;
        runner.send("b2", SOURCE, Vec::new(), true).await;
        for b in ["b1", "b2"] {
            let done = runner.response(b).await;
            assert_eq!(done.error, "", "{b}");
            runner.output(b, "sink-Big-out").await;
        }
        // Nothing more arrives later.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for b in ["b1", "b2"] {
            assert_eq!(
                runner.data_for(b, "sink-Big-out"),
                [data_message(b, "sink-Big-out", Vec::new(), true)],
                "{b}"
            );
        }
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_bundles_get_their_own_data() {
        let runner = FakeRunner::start().await;
        let (g, t) = doubling();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Double"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.process_bundle("b2", "d1").await;
        // One message carrying chunks of both bundles.
        runner
            .send_elements(fnapi::Elements {
                data: vec![
                    data_message("b1", SOURCE, encode(&[1i64, 2]), false),
                    data_message("b2", SOURCE, encode(&[100i64]), false),
                ],
                timers: Vec::new(),
            })
            .await;
        runner
            .send("b2", SOURCE, encode(&[200i64, 300]), true)
            .await;
        // b2 ends while b1 still waits for its input: they run side by side.
        let done = runner.response("b2").await;
        assert_eq!(done.error, "");
        assert_eq!(
            values::<i64>(&runner.output("b2", DOUBLED).await),
            [200, 400, 600]
        );
        assert!(runner.try_response("b1").is_none());
        runner.send("b1", SOURCE, encode(&[3i64]), true).await;
        let done = runner.response("b1").await;
        assert_eq!(done.error, "");
        assert_eq!(
            values::<i64>(&runner.output("b1", DOUBLED).await),
            [2, 4, 6]
        );
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_data_stream_fails_the_bundle_and_a_new_one_serves_the_next() {
        let runner = FakeRunner::start().await;
        let (g, t) = doubling();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Double"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64, 2]), false).await;
        runner.drop_data_stream().await;
        let failed = runner.response("b1").await;
        assert!(
            failed.error.contains("data stream"),
            "the bundle fails naming the data stream: {failed:?}"
        );
        assert_eq!(runner.data_streams_opened(), 1);
        // The worker keeps serving, on a new data stream.
        runner.process_bundle("b2", "d1").await;
        runner.send("b2", SOURCE, encode(&[5i64, 6]), true).await;
        let done = runner.response("b2").await;
        assert_eq!(done.error, "");
        assert_eq!(values::<i64>(&runner.output("b2", DOUBLED).await), [10, 12]);
        assert_eq!(runner.data_streams_opened(), 2);
        runner.stop(worker).await;
    }

    static SLOW_REACHED: AtomicBool = AtomicBool::new(false);
    static SLOW_RELEASE: AtomicBool = AtomicBool::new(false);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_data_stream_lost_after_the_input_fails_the_bundle_instead_of_losing_output() {
        let runner = FakeRunner::start().await;
        let (g, t) = graph(|p| {
            p.create("Nums", vec![0i64]).map("Slow", |x: &i64| {
                // Holds the bundle on 3 until the test has dropped the stream.
                if *x == 3 {
                    SLOW_REACHED.store(true, Ordering::SeqCst);
                    let deadline = Instant::now() + WAIT;
                    while !SLOW_RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                *x
            });
        });
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Slow"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64, 2, 3]), true).await;
        let deadline = Instant::now() + WAIT;
        while !SLOW_REACHED.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the DoFn never saw 3");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // All input is in; the output is not out yet.
        runner.drop_data_stream().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        SLOW_RELEASE.store(true, Ordering::SeqCst);
        let failed = runner.response("b1").await;
        assert!(failed.error.contains("data stream"), "{failed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            runner
                .data_for("b1", "sink-Slow-out")
                .iter()
                .all(|d| !d.is_last),
            "no end of an output that lost its chunks"
        );
        // The next bundle has a new stream.
        runner.process_bundle("b2", "d1").await;
        runner.send("b2", SOURCE, encode(&[7i64]), true).await;
        assert_eq!(runner.response("b2").await.error, "");
        assert_eq!(
            values::<i64>(&runner.output("b2", "sink-Slow-out").await),
            [7]
        );
        runner.stop(worker).await;
    }

    #[derive(Clone, Serialize, Deserialize)]
    struct AddAll {
        all: IterableView<i64>,
    }

    impl DoFn for AddAll {
        type In = i64;
        type Out = String;
        fn process(&mut self, x: &i64, ctx: &mut Context<'_, String>) -> Result<()> {
            let all = ctx.side_input(&self.all)?;
            ctx.emit(format!("{x}+{}/{}", all.iter().sum::<i64>(), all.len()));
            Ok(())
        }
    }

    /// `Nums` (fed by the runner) → `AddAll`, with `Side` as a side input.
    fn with_side_input() -> (Arc<Graph>, Translation) {
        graph(|p| {
            let side = p.create("Side", vec![0i64]).as_iter("SideView");
            p.create("Nums", vec![0i64]).apply_par_do(
                "AddAll",
                ParDo::of(AddAll { all: side.clone() }).side_input(&side),
            );
        })
    }

    /// 1000, 2000 and 3000 as the side input's elements, split in two
    /// pages in the middle of the second.
    fn two_pages(runner: &FakeRunner) {
        let mut all = Vec::new();
        for v in [1000i64, 2000, 3000] {
            v.encode_wire(&mut all);
        }
        let cut = 3;
        runner.serve_side_input(
            "AddAll",
            &translate::side_input_id(0),
            vec![all[..cut].to_vec(), all[cut..].to_vec()],
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_side_input_in_two_pages_is_read_whole() {
        let runner = FakeRunner::start().await;
        let (g, t) = with_side_input();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["AddAll"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        two_pages(&runner);
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64, 2]), true).await;
        let done = runner.response("b1").await;
        assert_eq!(done.error, "");
        assert_eq!(
            values::<String>(&runner.output("b1", "sink-AddAll-out").await),
            ["1+6000/3", "2+6000/3"]
        );
        let gets: Vec<(String, Vec<u8>)> = runner
            .state_requests()
            .into_iter()
            .map(|r| {
                let Some(fnapi::state_request::Request::Get(g)) = r.request else {
                    panic!("not a get: {r:?}");
                };
                (r.instruction_id, g.continuation_token)
            })
            .collect();
        assert_eq!(
            gets,
            [
                ("b1".to_string(), Vec::new()),
                ("b1".to_string(), b"1".to_vec())
            ]
        );
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_state_stream_is_opened_again_for_the_next_bundle() {
        let runner = FakeRunner::start().await;
        let (g, t) = with_side_input();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["AddAll"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        two_pages(&runner);
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64]), true).await;
        assert_eq!(runner.response("b1").await.error, "");
        assert_eq!(runner.state_streams_opened(), 1);
        runner.drop_state_stream().await;
        // The worker hears of it (asynchronously) before the next bundle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        runner.process_bundle("b2", "d1").await;
        runner.send("b2", SOURCE, encode(&[2i64]), true).await;
        let done = runner.response("b2").await;
        assert_eq!(done.error, "");
        assert_eq!(
            values::<String>(&runner.output("b2", "sink-AddAll-out").await),
            ["2+6000/3"]
        );
        assert_eq!(runner.state_streams_opened(), 2);
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_carries_the_worker_id() {
        let runner = FakeRunner::start().await;
        let (g, t) = with_side_input();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["AddAll"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        two_pages(&runner);
        let worker = runner.start_worker(g);
        runner.process_bundle("b1", "d1").await;
        runner.send("b1", SOURCE, encode(&[1i64]), true).await;
        assert_eq!(runner.response("b1").await.error, "");
        runner.output("b1", "sink-AddAll-out").await;
        let calls = runner.calls();
        let mut kinds: Vec<&str> = calls.iter().map(|(c, _)| *c).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(
            kinds,
            ["control", "data", "get_process_bundle_descriptor", "state"]
        );
        for (call, id) in &calls {
            assert_eq!(id.as_deref(), Some(WORKER_ID), "{call}");
        }
        runner.stop(worker).await;
    }

    /// `Words` (fed by the runner) → `Check` (fails on words starting with
    /// "bad") and → `Upper`.
    fn words() -> (Arc<Graph>, Translation) {
        graph(|p| {
            let words = p.create("Words", vec![String::new()]);
            words.try_map("Check", |w: &String| {
                if w.starts_with("bad") {
                    Err(anyhow!("words must not be bad"))
                } else {
                    Ok(w.len() as i64)
                }
            });
            words.map("Upper", |w: &String| w.to_uppercase());
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_dofn_fails_its_bundle_naming_transform_element_and_cause() {
        let runner = FakeRunner::start().await;
        let (g, t) = words();
        runner.add_descriptor(stage(
            &t,
            "d1",
            &["Check"],
            &runner.data_url(),
            &runner.state_url(),
        ));
        let worker = runner.start_worker(g);
        let bad = format!("bad{}", "x".repeat(1000));
        runner.process_bundle("b1", "d1").await;
        runner
            .send(
                "b1",
                "source-Words-out",
                encode(&["fine".to_string(), bad.clone(), "also fine".into()]),
                true,
            )
            .await;
        let failed = runner.response("b1").await;
        let e = &failed.error;
        assert!(e.contains("transform 'Check'"), "{e}");
        assert!(e.contains("words must not be bad"), "{e}");
        assert!(e.contains("\"badxxxx"), "the element: {e}");
        assert!(e.contains('…') && !e.contains(&bad), "abridged: {e}");
        assert!(failed.response.is_none());
        // Input of the failed bundle that arrives late is dropped.
        runner
            .send(
                "b1",
                "source-Words-out",
                encode(&["late".to_string()]),
                true,
            )
            .await;
        // The next bundle runs.
        runner.process_bundle("b2", "d1").await;
        runner
            .send(
                "b2",
                "source-Words-out",
                encode(&["good".to_string()]),
                true,
            )
            .await;
        assert_eq!(runner.response("b2").await.error, "");
        assert_eq!(
            values::<i64>(&runner.output("b2", "sink-Check-out").await),
            [4]
        );
        runner.stop(worker).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_output_comes_in_chunks_of_whole_elements_then_the_end() {
        let runner = FakeRunner::start().await;
        let (g, t) = words();
        // Registered rather than fetched.
        let d = stage(
            &t,
            "d1",
            &["Upper"],
            &runner.data_url(),
            &runner.state_url(),
        );
        let worker = runner.start_worker(g);
        runner
            .instruct(
                "register",
                Rq::Register(fnapi::RegisterRequest {
                    process_bundle_descriptor: vec![d],
                }),
            )
            .await;
        assert_eq!(runner.response("register").await.error, "");
        let input: Vec<String> = (0..3000)
            .map(|i| format!("{i:05}-{}", "w".repeat(1000)))
            .collect();
        runner.process_bundle("b1", "d1").await;
        // The input in chunks that cut elements anywhere.
        let bytes = encode(&input);
        for (k, chunk) in bytes.chunks(65_521).enumerate() {
            let last = (k + 1) * 65_521 >= bytes.len();
            runner
                .send("b1", "source-Words-out", chunk.to_vec(), last)
                .await;
        }
        assert_eq!(runner.response("b1").await.error, "");
        let out = runner.output("b1", "sink-Upper-out").await;
        let (end, chunks) = out.split_last().expect("some output");
        assert_eq!(end, &data_message("b1", "sink-Upper-out", Vec::new(), true));
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        let mut got = Vec::new();
        for c in chunks {
            assert!(!c.is_last && !c.data.is_empty());
            got.extend(decode::<String>(&c.data).expect("a chunk holds whole elements"));
        }
        let want: Vec<String> = input.iter().map(|w| w.to_uppercase()).collect();
        assert_eq!(got, want);
        assert!(
            runner
                .calls()
                .iter()
                .all(|(c, _)| *c != "get_process_bundle_descriptor"),
            "a registered descriptor is not fetched"
        );
        runner.stop(worker).await;
    }
}
