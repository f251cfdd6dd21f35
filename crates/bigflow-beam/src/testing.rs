//! Testing pipelines as in Beam: `TestPipeline` and `assert_that`.
//!
//! ```
//! use bigflow_beam::prelude::*;
//!
//! let p = TestPipeline::new();
//! let squares = p.create("Numbers", vec![1i64, 2, 3]).map("Square", |x| x * x);
//! assert_that(&squares, equal_to(vec![1, 4, 9]));
//! p.run().unwrap(); // an Err names the failed assertion
//! ```
//!
//! Assertions are checked when the pipeline runs; a failure makes `run`
//! return an error listing the missing and unexpected elements.

use std::sync::Arc;

use anyhow::anyhow;

use crate::coders::encode_to_vec;
use crate::graph::{Element, Maker};
use crate::options::PipelineOptions;
use crate::pipeline::{PCollection, Pipeline, add_node};
use crate::side::{CollectSink, Collected};

/// A pipeline for tests: the DirectRunner with the default settings.
#[derive(Debug)]
pub struct TestPipeline;

impl TestPipeline {
    /// A new test pipeline.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Pipeline {
        Pipeline::new(PipelineOptions::default())
    }

    /// A test pipeline with these options (e.g. a small memory budget).
    pub fn with_options(options: PipelineOptions) -> Pipeline {
        Pipeline::new(options)
    }
}

/// Checks a collection's contents (all windows together).
pub struct Matcher<T> {
    check: Box<dyn Fn(&[T]) -> Result<(), String> + Send + Sync>,
}

/// The collection holds exactly `expected`, in any order.
pub fn equal_to<T: Element>(expected: Vec<T>) -> Matcher<T> {
    Matcher {
        check: Box::new(move |actual: &[T]| {
            let mut want: Vec<(Vec<u8>, &T)> =
                expected.iter().map(|x| (encode_to_vec(x), x)).collect();
            let mut got: Vec<(Vec<u8>, &T)> =
                actual.iter().map(|x| (encode_to_vec(x), x)).collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            got.sort_by(|a, b| a.0.cmp(&b.0));
            let (mut i, mut j) = (0, 0);
            let mut missing = Vec::new();
            let mut unexpected = Vec::new();
            while i < want.len() || j < got.len() {
                match (want.get(i), got.get(j)) {
                    (Some(w), Some(g)) if w.0 == g.0 => {
                        i += 1;
                        j += 1;
                    }
                    (Some(w), Some(g)) if w.0 < g.0 => {
                        missing.push(w.1);
                        i += 1;
                    }
                    (Some(_), Some(g)) => {
                        unexpected.push(g.1);
                        j += 1;
                    }
                    (Some(w), None) => {
                        missing.push(w.1);
                        i += 1;
                    }
                    (None, Some(g)) => {
                        unexpected.push(g.1);
                        j += 1;
                    }
                    (None, None) => break,
                }
            }
            if missing.is_empty() && unexpected.is_empty() {
                return Ok(());
            }
            let show = |v: &[&T]| -> String {
                let mut s: Vec<String> = v.iter().take(20).map(|x| format!("{x:?}")).collect();
                if v.len() > 20 {
                    s.push(format!("… {} more", v.len() - 20));
                }
                s.join(", ")
            };
            Err(format!(
                "expected {} elements, got {}; missing: [{}]; unexpected: [{}]",
                expected.len(),
                actual.len(),
                show(&missing),
                show(&unexpected)
            ))
        }),
    }
}

/// The collection is empty.
pub fn is_empty<T: Element>() -> Matcher<T> {
    equal_to(Vec::new())
}

/// A check of your own over all elements (sorted by their encoding).
pub fn satisfies<T: Element>(
    f: impl Fn(&[T]) -> Result<(), String> + Send + Sync + 'static,
) -> Matcher<T> {
    Matcher { check: Box::new(f) }
}

/// Checks `pcoll` against `matcher` when the pipeline runs.
pub fn assert_that<T: Element>(pcoll: &PCollection<T>, matcher: Matcher<T>) {
    let label = {
        let g = pcoll.graph.borrow();
        let base = format!("assert_that({})", g.nodes[pcoll.node].label);
        let mut label = base.clone();
        let mut i = 2;
        while g.nodes.iter().any(|n| n.label == label) {
            label = format!("{base}#{i}");
            i += 1;
        }
        label
    };
    let node = add_node(
        &pcoll.graph,
        &label,
        "AssertThat",
        &[pcoll.node],
        crate::worker_ops::codec::<T>(),
        serde_json::Value::Null,
    );
    let maker: Maker<T> = Arc::new(move |env| {
        Ok(Box::new(CollectSink {
            state: env.state::<Collected<T>>(node)?,
            local: Vec::new(),
        }))
    });
    let matcher = Arc::new(matcher);
    let mut g = pcoll.graph.borrow_mut();
    g.add_consumer(pcoll.node, node, maker);
    let n = &mut g.nodes[node];
    n.barrier = true;
    n.primitive = crate::graph::Primitive::Assert;
    n.init_state = Some(Arc::new(|_| Ok(Arc::new(Collected::<T>::new()))));
    let l = label.clone();
    n.check = Some(Arc::new(move |env| {
        let items: Vec<T> = env
            .state::<Collected<T>>(node)?
            .sorted()?
            .into_iter()
            .map(|wv| wv.value)
            .collect();
        (matcher.check)(&items).map_err(|m| anyhow!("{l} failed: {m}"))
    }));
}
