//! The Runner API pipeline a word count translates to: pinned as a readable
//! snapshot, and checked for the structure Beam's runners rely on.
#![cfg(feature = "portable")]

use std::collections::HashSet;

use bigflow_beam::prelude::*;
use bigflow_beam::proto::pipeline as rapi;
use bigflow_beam::runner::portable::pipeline_proto;

fn word_count() -> Pipeline {
    let p = Pipeline::new(PipelineOptions::default());
    p.read_text("ReadLines", "input/*.txt")
        .flat_map("ExtractWords", |l: &String| {
            l.split_whitespace().map(str::to_string).collect::<Vec<_>>()
        })
        .count_per_element("CountWords")
        .map("Format", |(w, n): &(String, i64)| format!("{w}: {n}"))
        .write_text("WriteCounts", WriteText::to("out/counts").shards(3));
    p
}

/// Transforms that runners execute themselves; everything else runs in an SDK.
const RUNNER_URNS: &[&str] = &[
    "beam:transform:impulse:v1",
    "beam:transform:group_by_key:v1",
    "beam:transform:flatten:v1",
];

fn check_structure(p: &rapi::Pipeline) {
    let c = p.components.as_ref().expect("components");
    // Every coder's components, every collection's coder and windowing resolve.
    for (id, coder) in &c.coders {
        for comp in &coder.component_coder_ids {
            assert!(
                c.coders.contains_key(comp),
                "coder {id}: component {comp} missing"
            );
        }
    }
    for (id, pc) in &c.pcollections {
        assert!(
            c.coders.contains_key(&pc.coder_id),
            "collection {id}: coder missing"
        );
        assert!(
            c.windowing_strategies
                .contains_key(&pc.windowing_strategy_id),
            "collection {id}: windowing missing"
        );
    }
    for (id, w) in &c.windowing_strategies {
        assert!(
            c.coders.contains_key(&w.window_coder_id),
            "windowing {id}: coder missing"
        );
    }
    // Ids are what Beam allows; SDK transforms name an environment that exists.
    let id_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    };
    for (id, t) in &c.transforms {
        assert!(id_ok(id), "transform id {id}");
        let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let composite = !t.subtransforms.is_empty();
        if !composite && !RUNNER_URNS.contains(&urn) {
            assert!(
                c.environments.contains_key(&t.environment_id),
                "transform {id} ({urn}) has no environment"
            );
        }
        for part in &t.subtransforms {
            assert!(c.transforms.contains_key(part), "{id}: part {part} missing");
        }
        for pc in t.inputs.values().chain(t.outputs.values()) {
            assert!(
                c.pcollections.contains_key(pc),
                "{id}: collection {pc} missing"
            );
        }
    }
    // Roots in topological order: a root reads only what earlier roots made.
    let mut made: HashSet<&str> = HashSet::new();
    fn outputs<'a>(c: &'a rapi::Components, id: &'a str, out: &mut HashSet<&'a str>) {
        let t = &c.transforms[id];
        out.extend(t.outputs.values().map(String::as_str));
        for part in &t.subtransforms {
            outputs(c, part, out);
        }
    }
    for root in &p.root_transform_ids {
        let t = &c.transforms[root];
        let mut own = HashSet::new();
        outputs(c, root, &mut own);
        for (name, pc) in &t.inputs {
            assert!(
                made.contains(pc.as_str()) || own.contains(pc.as_str()),
                "root {root} reads {name}={pc} before it is made"
            );
        }
        made.extend(own);
    }
}

#[test]
fn word_count_translates_to_a_pinned_runner_api_pipeline() {
    let (proto, text) = pipeline_proto(&word_count(), "localhost:50000").unwrap();
    check_structure(&proto);
    insta::assert_snapshot!(text);
}

#[test]
fn translation_round_trips_through_protobuf() {
    use prost::Message;
    let (proto, _) = pipeline_proto(&word_count(), "localhost:50000").unwrap();
    let bytes = proto.encode_to_vec();
    let back = rapi::Pipeline::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, proto);
}

#[test]
fn assertions_and_windowed_side_inputs_are_refused_with_the_transform_named() {
    let p = TestPipeline::new();
    let xs = p.create("Xs", vec![1i64, 2]);
    assert_that(&xs, equal_to(vec![1, 2]));
    let e = pipeline_proto(&p, "localhost:1").unwrap_err().to_string();
    assert!(
        e.contains("assert_that(Xs)") && e.contains("DirectRunner"),
        "{e}"
    );
}
