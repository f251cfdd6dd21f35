//! Apache Beam pipelines written in Rust: the Beam model's `Pipeline` and
//! transforms, an embedded DirectRunner, pipeline options and `BeamJob`.
//!
//! - [`pipeline`]: [`Pipeline`], [`PCollection`] and the transforms
//!   (`map`, `flat_map`, `filter`, `par_do`, `group_by_key`,
//!   `combine_per_key`, `co_group_by_key`, `flatten`, windows, side inputs);
//!   [`io`]: text and NDJSON files; `parquet_io` (feature `parquet`):
//!   Parquet files; both local or on Cloud Storage (`gs://`, feature `gcs`)
//!   through the private `fs` module.
//! - [`dofn`]: [`DoFn`] with Beam's lifecycle; [`combiners`]: [`CombineFn`]
//!   and the built-in combiners; [`side`]: side-input views.
//! - [`coders`]: element encodings compatible with Beam's standard coders.
//! - [`runner`]: the [`PipelineRunner`] trait and the [`DirectRunner`];
//!   the private `shuffle` module is its spilling shuffle.
//! - [`options`]: Beam's pipeline options; [`job`]: [`BeamJob`].
//! - [`testing`]: `TestPipeline`, `assert_that`, `equal_to`.

// Closures and type-erased receivers make long types; aliases would hide them.
#![allow(clippy::type_complexity)]

pub mod coders;
pub mod combiners;
pub mod dofn;
mod fs;
mod graph;
pub mod io;
pub mod job;
pub mod metrics;
pub mod options;
#[cfg(feature = "parquet")]
pub mod parquet_io;
pub mod pipeline;
#[cfg(feature = "portable")]
pub mod proto;
pub mod runner;
mod shuffle;
pub mod side;
pub mod testing;
pub mod window;
pub mod wire;
mod worker_ops;

pub use coders::{Bytes, Coded};
pub use combiners::{CombineFn, Count, Max, Mean, Min, Sum, Top};
pub use dofn::{Context, DoFn, DoFnRegistry, TupleTag};
pub use graph::{Element, RunControl};
pub use io::{ReadText, WriteText};
pub use job::{BeamJob, DockerImage, JobArgs};
pub use metrics::MetricResults;
pub use options::{OptionsError, PipelineOptions};
pub use pipeline::{PCollection, ParDo, ParDoOutputs, Pipeline, flatten};
pub use runner::{DirectRunner, PipelineResult, PipelineRunner};
pub use testing::{TestPipeline, assert_that, equal_to, is_empty, satisfies};
pub use window::{Timestamp, Window, WindowFn, WindowedValue};

/// What pipeline code usually needs.
pub mod prelude {
    pub use crate::combiners::{CombineFn, Count, Max, Mean, Min, Sum, Top};
    pub use crate::dofn::{Context, DoFn, TupleTag};
    pub use crate::io::{ReadText, WriteText};
    pub use crate::job::{BeamJob, DockerImage, JobArgs};
    pub use crate::options::PipelineOptions;
    pub use crate::pipeline::{PCollection, ParDo, Pipeline, flatten};
    pub use crate::side::SideInput;
    pub use crate::testing::{TestPipeline, assert_that, equal_to, is_empty, satisfies};
    pub use crate::window::{WindowFn, seconds};
}
