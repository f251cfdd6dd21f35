//! A server of Beam's `BeamFnExternalWorkerPool` service on loopback.
//!
//! A runner whose pipeline names an environment `beam:env:external:v1`
//! (payload: this pool's address) asks the pool for SDK workers: each
//! `StartWorker` request carries a worker id and the runner's Control,
//! Logging, Artifact and Provision endpoints, and the pool starts a worker
//! that connects back to them; `StopWorker` asks it to stop. What starting
//! and stopping mean is up to the caller ([`StartWorker`], [`StopWorker`]):
//! a thread serving the Fn API in this process, or a child process.
//!
//! A failure to start is answered in the response's `error` string, as
//! Beam's own pool (`worker_pool_main`) does, not as a gRPC error: the
//! runner reports it as the reason the job failed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::proto::fn_execution::beam_fn_external_worker_pool_server::{
    BeamFnExternalWorkerPool, BeamFnExternalWorkerPoolServer,
};
use crate::proto::fn_execution::{
    StartWorkerRequest, StartWorkerResponse, StopWorkerRequest, StopWorkerResponse,
};
use crate::proto::pipeline::ApiServiceDescriptor;

/// How long [`WorkerPool::shutdown`] waits for open connections to close
/// before it stops the server anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a `StartWorker` request asks for: the worker's id and the runner's
/// endpoints it must connect to, as `host:port` (the request's
/// `ApiServiceDescriptor.url`; empty when the request has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkerEndpoints {
    /// The id the worker sends as `worker_id` metadata on every call.
    pub worker_id: String,
    /// The Fn API Control service (always present: requests without it are refused).
    pub control: String,
    /// The Fn API Logging service.
    pub logging: String,
    /// The artifact retrieval service.
    pub artifact: String,
    /// The Provision service (pipeline options, other endpoints).
    pub provision: String,
    /// Runner-specific parameters of the request.
    pub params: HashMap<String, String>,
}

/// Starts a worker for the endpoints; an error is returned to the runner as
/// the response's `error`. Called on a blocking thread: it may block
/// briefly (spawning a process), but should not wait for the worker to end.
pub(crate) type StartWorker = Arc<dyn Fn(WorkerEndpoints) -> Result<()> + Send + Sync>;

/// Stops the worker with this id (ids not known are ignored).
pub(crate) type StopWorker = Arc<dyn Fn(&str) + Send + Sync>;

/// A running `BeamFnExternalWorkerPool` server on `127.0.0.1`; stopped by
/// [`WorkerPool::shutdown`] or when dropped.
pub(crate) struct WorkerPool {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl WorkerPool {
    /// Serves the pool on `127.0.0.1` on a free port, calling `start` for
    /// each `StartWorker` and `stop` for each `StopWorker`.
    pub(crate) async fn serve(start: StartWorker, stop: StopWorker) -> Result<WorkerPool> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot open a loopback port for the Beam worker pool")?;
        let address = listener
            .local_addr()
            .context("the worker pool's port has no address")?;
        let (tx, rx) = oneshot::channel::<()>();
        let service = BeamFnExternalWorkerPoolServer::new(Pool { start, stop });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(service, incoming, async {
                    // A dropped sender stops the server too.
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("the Beam worker pool on {address} stopped: {e}");
            }
        });
        Ok(WorkerPool {
            address,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The pool's address, `127.0.0.1:PORT`: what an external environment's
    /// payload names.
    pub(crate) fn endpoint(&self) -> String {
        self.address.to_string()
    }

    /// Stops the server: no new connections; open ones get a few seconds to
    /// close before the server task is aborted.
    pub(crate) async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The service behind the server.
struct Pool {
    start: StartWorker,
    stop: StopWorker,
}

/// The `host:port` of a descriptor, or empty.
fn url(descriptor: Option<ApiServiceDescriptor>) -> String {
    descriptor.map(|d| d.url).unwrap_or_default()
}

#[tonic::async_trait]
impl BeamFnExternalWorkerPool for Pool {
    async fn start_worker(
        &self,
        request: Request<StartWorkerRequest>,
    ) -> Result<Response<StartWorkerResponse>, Status> {
        let r = request.into_inner();
        let endpoints = WorkerEndpoints {
            worker_id: r.worker_id,
            control: url(r.control_endpoint),
            logging: url(r.logging_endpoint),
            artifact: url(r.artifact_endpoint),
            provision: url(r.provision_endpoint),
            params: r.params,
        };
        let started = if endpoints.control.is_empty() {
            Err(anyhow!(
                "StartWorker for worker '{}' names no control endpoint",
                endpoints.worker_id
            ))
        } else {
            let start = self.start.clone();
            tokio::task::spawn_blocking(move || start(endpoints))
                .await
                .unwrap_or_else(|e| Err(anyhow!("starting the worker panicked: {e}")))
        };
        let error = match started {
            Ok(()) => String::new(),
            Err(e) => format!("{e:#}"),
        };
        Ok(Response::new(StartWorkerResponse { error }))
    }

    async fn stop_worker(
        &self,
        request: Request<StopWorkerRequest>,
    ) -> Result<Response<StopWorkerResponse>, Status> {
        let worker_id = request.into_inner().worker_id;
        let stop = self.stop.clone();
        let error = match tokio::task::spawn_blocking(move || stop(&worker_id)).await {
            Ok(()) => String::new(),
            Err(e) => format!("stopping the worker panicked: {e}"),
        };
        Ok(Response::new(StopWorkerResponse { error }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use prost::Message as _;

    use super::*;
    use crate::graph::RunControl;
    use crate::proto::fn_execution::beam_fn_external_worker_pool_client::BeamFnExternalWorkerPoolClient;
    use crate::runner::portable::job_service::run_job;

    /// A pool whose callbacks record what they were asked, and refuse
    /// workers whose id starts with `refuse` (all workers if `refuse_all`).
    async fn recording_pool(
        refuse_all: bool,
    ) -> (
        WorkerPool,
        Arc<Mutex<Vec<WorkerEndpoints>>>,
        Arc<Mutex<Vec<String>>>,
    ) {
        let started = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let (s, t) = (started.clone(), stopped.clone());
        let pool = WorkerPool::serve(
            Arc::new(move |endpoints: WorkerEndpoints| {
                let refuse = refuse_all || endpoints.worker_id.starts_with("refuse");
                let id = endpoints.worker_id.clone();
                s.lock().unwrap().push(endpoints);
                if refuse {
                    Err(anyhow!("no room for worker {id}")).context("starting the SDK worker")
                } else {
                    Ok(())
                }
            }),
            Arc::new(move |id: &str| t.lock().unwrap().push(id.to_string())),
        )
        .await
        .unwrap();
        (pool, started, stopped)
    }

    fn descriptor(url: &str) -> Option<ApiServiceDescriptor> {
        Some(ApiServiceDescriptor {
            url: url.into(),
            authentication: None,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_worker_calls_back_with_the_requests_endpoints() {
        let (pool, started, stopped) = recording_pool(false).await;
        let endpoint = pool.endpoint();
        assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
        let mut client = BeamFnExternalWorkerPoolClient::connect(format!("http://{endpoint}"))
            .await
            .unwrap();

        let request = StartWorkerRequest {
            worker_id: "worker-1".into(),
            control_endpoint: descriptor("localhost:1001"),
            logging_endpoint: descriptor("localhost:1002"),
            artifact_endpoint: descriptor("localhost:1003"),
            provision_endpoint: descriptor("localhost:1004"),
            params: HashMap::from([("k".to_string(), "v".to_string())]),
        };
        let answer = client.start_worker(request).await.unwrap().into_inner();
        assert_eq!(answer.error, "");
        assert_eq!(
            started.lock().unwrap().as_slice(),
            [WorkerEndpoints {
                worker_id: "worker-1".into(),
                control: "localhost:1001".into(),
                logging: "localhost:1002".into(),
                artifact: "localhost:1003".into(),
                provision: "localhost:1004".into(),
                params: HashMap::from([("k".to_string(), "v".to_string())]),
            }]
        );

        // A callback's error is the response's error, not a gRPC failure.
        let request = StartWorkerRequest {
            worker_id: "refuse-2".into(),
            control_endpoint: descriptor("localhost:1001"),
            ..Default::default()
        };
        let answer = client.start_worker(request).await.unwrap().into_inner();
        assert_eq!(
            answer.error,
            "starting the SDK worker: no room for worker refuse-2"
        );
        assert_eq!(started.lock().unwrap().len(), 2);

        // Without a control endpoint there is nothing to connect to.
        let request = StartWorkerRequest {
            worker_id: "worker-3".into(),
            ..Default::default()
        };
        let answer = client.start_worker(request).await.unwrap().into_inner();
        assert!(answer.error.contains("no control endpoint"), "{answer:?}");
        assert_eq!(started.lock().unwrap().len(), 2);

        let request = StopWorkerRequest {
            worker_id: "worker-1".into(),
        };
        let answer = client.stop_worker(request).await.unwrap().into_inner();
        assert_eq!(answer.error, "");
        assert_eq!(stopped.lock().unwrap().as_slice(), ["worker-1"]);

        // Shutdown stops the server even with a client still connected.
        let begun = std::time::Instant::now();
        pool.shutdown().await;
        assert!(begun.elapsed() < SHUTDOWN_GRACE + Duration::from_secs(2));
        assert!(
            tokio::net::TcpStream::connect(&endpoint).await.is_err(),
            "the pool still listens after shutdown"
        );
        let request = StopWorkerRequest {
            worker_id: "worker-1".into(),
        };
        assert!(client.stop_worker(request).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_pool_stops_listening() {
        let (pool, _, _) = recording_pool(false).await;
        let endpoint = pool.endpoint();
        tokio::net::TcpStream::connect(&endpoint).await.unwrap();
        drop(pool);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(&endpoint).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped pool still listens"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Beam's runner (behind its job service) asks the pool for the worker
    /// of an external environment, with its own endpoints; the pool's
    /// refusal fails the job with the callback's words.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beams_runner_asks_the_pool_for_a_worker() {
        let Some(python) = bigflow_testkit::beam_python() else {
            return;
        };
        let Some(service) = bigflow_testkit::beam::BeamJobService::start() else {
            return;
        };
        let (pool, started, _) = recording_pool(true).await;
        let bytes = bigflow_testkit::beam::python_pipeline(
            &python,
            "_ = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x + 1)",
            Some("environments.ExternalEnvironment(args[0])"),
            &[&pool.endpoint()],
        );
        let pipeline = crate::proto::pipeline::Pipeline::decode(bytes.as_slice()).unwrap();
        let outcome = run_job(
            &service.endpoint(),
            pipeline,
            "external",
            prost_types::Struct::default(),
            &RunControl::default(),
            Duration::from_millis(100),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", service.log()));
        pool.shutdown().await;
        assert_eq!(outcome.state, "FAILED", "{outcome:?}");
        let asked = started.lock().unwrap().clone();
        assert_eq!(asked.len(), 1, "{asked:?}");
        let worker = &asked[0];
        assert!(!worker.worker_id.is_empty(), "{worker:?}");
        for url in [&worker.control, &worker.logging, &worker.provision] {
            let port = url.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            assert!(matches!(port, Some(Ok(p)) if p > 0), "{worker:?}");
        }
        let refusal = format!(
            "Error starting worker: starting the SDK worker: no room for worker {}",
            worker.worker_id
        );
        assert!(
            outcome.messages.iter().any(|m| m.contains(&refusal)),
            "{:#?}",
            outcome.messages
        );
    }
}
