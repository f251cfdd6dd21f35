//! Apache Beam 2.77's portability API as Rust types and gRPC stubs (feature
//! `portable`): the Runner API (`Pipeline`, transforms, coders, windowing
//! strategies, environments), the Fn API (Control, Data, State, Logging
//! services the SDK harness speaks), Provision, and the Job, Artifact and
//! Expansion services. Generated at build time from `proto/beam-2.77.0.fds.bin`.
//!
//! The modules mirror the protobuf packages, because the generated code
//! refers across packages by relative paths; [`pipeline`], [`fn_execution`]
//! and [`job_management`] are the short names to use.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `org.apache.beam.model.*`.
pub mod org {
    pub mod apache {
        pub mod beam {
            pub mod model {
                pub mod pipeline {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.pipeline.v1.rs"
                        ));
                    }
                }
                pub mod fn_execution {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.fn_execution.v1.rs"
                        ));
                    }
                }
                pub mod job_management {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.job_management.v1.rs"
                        ));
                    }
                }
            }
        }
    }
}

/// The Fn API and Provision service.
pub use org::apache::beam::model::fn_execution::v1 as fn_execution;
/// The Job, Artifact and Expansion services.
pub use org::apache::beam::model::job_management::v1 as job_management;
/// The Runner API: `beam_runner_api.proto` and its companions.
pub use org::apache::beam::model::pipeline::v1 as pipeline;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_api_round_trips_a_pipeline_and_names_beams_services() {
        let mut p = pipeline::Pipeline::default();
        p.root_transform_ids.push("impulse".into());
        let mut components = pipeline::Components::default();
        components.transforms.insert(
            "impulse".into(),
            pipeline::PTransform {
                unique_name: "Impulse".into(),
                spec: Some(pipeline::FunctionSpec {
                    urn: "beam:transform:impulse:v1".into(),
                    payload: Vec::new(),
                }),
                ..Default::default()
            },
        );
        p.components = Some(components);
        let bytes = p.encode_to_vec();
        assert_eq!(pipeline::Pipeline::decode(bytes.as_slice()).unwrap(), p);
        // The gRPC stubs exist for the services the harness and runner speak.
        let _ = fn_execution::beam_fn_control_client::BeamFnControlClient::<
            tonic::transport::Channel,
        >::new;
        let _ =
            job_management::job_service_client::JobServiceClient::<tonic::transport::Channel>::new;
        let _ = fn_execution::beam_fn_external_worker_pool_server::BeamFnExternalWorkerPoolServer::<
            Pool,
        >::new;
    }

    struct Pool;

    #[tonic::async_trait]
    impl fn_execution::beam_fn_external_worker_pool_server::BeamFnExternalWorkerPool for Pool {
        async fn start_worker(
            &self,
            _: tonic::Request<fn_execution::StartWorkerRequest>,
        ) -> Result<tonic::Response<fn_execution::StartWorkerResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn stop_worker(
            &self,
            _: tonic::Request<fn_execution::StopWorkerRequest>,
        ) -> Result<tonic::Response<fn_execution::StopWorkerResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }
}
