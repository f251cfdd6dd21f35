//! The graph as a Beam Runner API `Pipeline`.
//!
//! Every node becomes what Beam's own SDKs would emit for it:
//!
//! | node                         | Runner API                                          |
//! |------------------------------|-----------------------------------------------------|
//! | Create, ReadFromText, …      | composite: `Impulse` → Split (the source's parts) → Reshuffle → Read |
//! | Map, FlatMap, Filter, ParDo, WithTimestamps, WindowInto | ParDo            |
//! | GroupByKey                   | `beam:transform:group_by_key:v1`                    |
//! | Flatten                      | `beam:transform:flatten:v1`                         |
//! | CombinePerKey                | `beam:transform:combine_per_key:v1` composite (GroupByKey + `combine_grouped_values`), which runners lift |
//! | … of `combine_globally`      | the same, then Impulse → InjectDefault (reads the combined value as a side input; the empty output when there is none), as Beam's `CombineGlobally` |
//! | WriteToText, …               | composite: Shard → GroupByKey → WriteShards; Impulse → Finalize (reads the written shards as a side input, renames only when all are there) |
//! | side-input views             | the ParDo's side input (iterable access), no transform |
//! | staging, Reshuffle           | nothing: the runner decides where to materialize    |
//!
//! Transform ids come from labels (`[A-Za-z0-9_-]`, made unique), listed in
//! construction order, which is topological. ParDos carry
//! `bigflow:dofn:v1` with the node's label: the SDK worker, which rebuilds
//! the same graph, runs that node's own code. The same translation run in
//! the worker gives the same collection ids, and each function's payload
//! names its node and role, so the worker knows what each transform of a
//! bundle is even where the runner renamed transforms.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use prost::Message;

use crate::coders::{Bytes, Coded, CoderSpec};
use crate::graph::{Graph, Primitive};
use crate::proto::pipeline as rapi;
use crate::window::WindowFn;

/// The URN of the function spec naming one of this binary's transforms.
pub(crate) const DOFN_URN: &str = "bigflow:dofn:v1";
/// The URN of a combine function of this binary.
pub(crate) const COMBINE_FN_URN: &str = "bigflow:combinefn:v1";
/// The id of the environment that runs this binary's code.
pub(crate) const ENVIRONMENT_ID: &str = "bigflow";

pub(crate) const IMPULSE: &str = "beam:transform:impulse:v1";
pub(crate) const PARDO: &str = "beam:transform:pardo:v1";
pub(crate) const GROUP_BY_KEY: &str = "beam:transform:group_by_key:v1";
pub(crate) const FLATTEN: &str = "beam:transform:flatten:v1";
pub(crate) const COMBINE_PER_KEY: &str = "beam:transform:combine_per_key:v1";
pub(crate) const COMBINE_GROUPED_VALUES: &str = "beam:transform:combine_grouped_values:v1";
pub(crate) const PRECOMBINE: &str = "beam:transform:combine_per_key_precombine:v1";
pub(crate) const MERGE_ACCUMULATORS: &str = "beam:transform:combine_per_key_merge_accumulators:v1";
pub(crate) const EXTRACT_OUTPUTS: &str = "beam:transform:combine_per_key_extract_outputs:v1";
pub(crate) const ITERABLE_SIDE_INPUT: &str = "beam:side_input:iterable:v1";

/// The coders and protocols an environment running this binary understands.
pub(crate) fn capabilities() -> Vec<String> {
    [
        "beam:coder:bytes:v1",
        "beam:coder:string_utf8:v1",
        "beam:coder:varint:v1",
        "beam:coder:bool:v1",
        "beam:coder:double:v1",
        "beam:coder:kv:v1",
        "beam:coder:iterable:v1",
        "beam:coder:nullable:v1",
        "beam:coder:length_prefix:v1",
        "beam:coder:global_window:v1",
        "beam:coder:interval_window:v1",
        "beam:coder:windowed_value:v1",
        "beam:protocol:progress_reporting:v1",
        "beam:protocol:worker_status:v1",
    ]
    .map(String::from)
    .to_vec()
}

/// What the SDK worker runs for a transform of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The node's own code, as a consumer of its input.
    ParDo(usize),
    /// A source node's splitting into parts, started by an impulse.
    Split(usize),
    /// A source node's reading of its parts.
    Source(usize),
    /// A Flatten node.
    Flatten(usize),
    /// A CombinePerKey node (any of its lifted phases).
    Combine(usize),
    /// A file sink: assigns shards.
    WriteShard(usize),
    /// A file sink: writes one shard's temporary file.
    WriteShards(usize),
    /// A file sink: renames complete shards into place.
    Finalize(usize),
    /// A global combine: its result, or the empty output for an empty input.
    InjectDefault(usize),
}

impl Role {
    /// The role named `name` (a payload's) of node `n`.
    pub(crate) fn parse(name: &str, n: usize) -> Result<Role> {
        Ok(match name {
            "pardo" => Role::ParDo(n),
            "split" => Role::Split(n),
            "source" => Role::Source(n),
            "flatten" => Role::Flatten(n),
            "combine" => Role::Combine(n),
            "write-shard" => Role::WriteShard(n),
            "write-shards" => Role::WriteShards(n),
            "finalize" => Role::Finalize(n),
            "inject-default" => Role::InjectDefault(n),
            other => bail!("unknown transform role '{other}'"),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Role::ParDo(_) => "pardo",
            Role::Split(_) => "split",
            Role::Source(_) => "source",
            Role::Flatten(_) => "flatten",
            Role::Combine(_) => "combine",
            Role::WriteShard(_) => "write-shard",
            Role::WriteShards(_) => "write-shards",
            Role::Finalize(_) => "finalize",
            Role::InjectDefault(_) => "inject-default",
        }
    }
}

/// The payload of `bigflow:dofn:v1` and `bigflow:combinefn:v1`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct FnPayload {
    /// The node's label.
    pub node: String,
    /// What of the node runs.
    pub role: String,
}

/// A graph translated.
pub(crate) struct Translation {
    pub pipeline: rapi::Pipeline,
    /// Collection id → the node that produces it.
    pub pcoll_node: HashMap<String, usize>,
    /// Transform id → label, for metrics.
    pub labels: HashMap<String, String>,
    /// A hash of the graph's structure, so a worker can tell it rebuilt the same one.
    pub plan_hash: String,
}

/// The id of a write's side input of written shards.
pub(crate) const WRITTEN_SIDE_INPUT: &str = "written";
/// The id of a global combine's side input of its combined value.
pub(crate) const COMBINED_SIDE_INPUT: &str = "combined";

/// The ParDo side input id of a node's `i`th view.
pub(crate) fn side_input_id(i: usize) -> String {
    format!("side{i}")
}

/// Translates `graph` for `environment`.
pub(crate) fn translate(graph: &Graph, environment: rapi::Environment) -> Result<Translation> {
    if !graph.errors.is_empty() {
        bail!(
            "the pipeline is invalid:\n  - {}",
            graph.errors.join("\n  - ")
        );
    }
    let mut t = Builder::default();
    t.components.environments.insert(
        ENVIRONMENT_ID.to_string(),
        rapi::Environment {
            capabilities: capabilities(),
            ..environment
        },
    );
    let n = graph.nodes.len();
    let mut node_pcoll: Vec<Option<String>> = vec![None; n];
    let mut pcoll_node = HashMap::new();
    let mut roots = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let ins: Vec<Option<String>> = node.inputs.iter().map(|s| node_pcoll[*s].clone()).collect();
        let input_pc = |k: usize| -> Result<String> {
            let src = node.inputs[k];
            ins[k].clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "internal: the input '{}' of '{}' has no collection",
                    graph.nodes[src].label,
                    node.label
                )
            })
        };
        let windowing = t.windowing(node.windowing);
        let coder = t.coder(&node.codec.coder());
        match node.primitive {
            Primitive::Identity | Primitive::Reshuffle => {
                node_pcoll[i] = Some(input_pc(0)?);
                continue;
            }
            Primitive::View => {
                if graph.nodes[node.inputs[0]].windowing != WindowFn::Global {
                    bail!(
                        "side input '{}' reads a windowed collection; on a Beam runner side inputs must be in the global window (window the main input instead)",
                        node.label
                    );
                }
                continue;
            }
            Primitive::Assert => bail!(
                "'{}' is a test assertion, which runs on the DirectRunner only; on a Beam runner, write the output and check the files",
                node.label
            ),
            Primitive::TaggedOutput => {
                // Declared by the ParDo that produces it.
                continue;
            }
            _ => {}
        }
        let tid = t.transform_id(&node.label);
        let pc = t.pcollection(&format!("{tid}-out"), &node.label, &coder, &windowing);
        node_pcoll[i] = Some(pc.clone());
        pcoll_node.insert(pc.clone(), i);
        match node.primitive {
            Primitive::Source => {
                // Impulse → Split (the source's parts) → Reshuffle (a
                // GroupByKey on the part's index spreads parts over workers)
                // → Read.
                let l = &node.label;
                let (imp_id, imp) = t.impulse(&format!("{l}/Impulse"));
                let split_id = t.transform_id(&format!("{l}/Split"));
                let group_id = t.transform_id(&format!("{l}/Reshuffle"));
                let read_id = t.transform_id(&format!("{l}/Read"));
                let parts_coder = t.coder(&<(i64, Bytes)>::coder_spec());
                let grouped_coder = t.coder(&<(i64, Vec<Bytes>)>::coder_spec());
                let global = t.windowing(WindowFn::Global);
                let parts = t.pcollection(
                    &format!("{split_id}-out"),
                    &format!("{l}/Split"),
                    &parts_coder,
                    &global,
                );
                let grouped = t.pcollection(
                    &format!("{group_id}-out"),
                    &format!("{l}/Reshuffle"),
                    &grouped_coder,
                    &global,
                );
                let split = t.pardo(
                    &split_id,
                    &format!("{l}/Split"),
                    &imp,
                    vec![("out".into(), parts.clone())],
                    Role::Split(i),
                    l,
                    BTreeMap::new(),
                );
                t.primitive(
                    &group_id,
                    &format!("{l}/Reshuffle"),
                    GROUP_BY_KEY,
                    vec![("in".into(), parts)],
                    grouped.clone(),
                );
                let read = t.pardo(
                    &read_id,
                    &format!("{l}/Read"),
                    &grouped,
                    vec![("out".into(), pc.clone())],
                    Role::Source(i),
                    l,
                    BTreeMap::new(),
                );
                t.composite(
                    &tid,
                    l,
                    None,
                    vec![],
                    pc.clone(),
                    vec![imp_id, split, group_id, read],
                );
                roots.push(tid);
            }
            Primitive::ParDo => {
                let mut outputs = vec![("out".to_string(), pc.clone())];
                for &child in &node.children {
                    let c = &graph.nodes[child];
                    if c.primitive == Primitive::TaggedOutput && c.inputs == [i] {
                        let tag = c
                            .label
                            .strip_prefix(&format!("{}.", node.label))
                            .unwrap_or(&c.label);
                        let ccoder = t.coder(&c.codec.coder());
                        let cw = t.windowing(c.windowing);
                        let cpc = t.pcollection(
                            &format!("{tid}-{}", sanitize(tag)),
                            &c.label,
                            &ccoder,
                            &cw,
                        );
                        node_pcoll[child] = Some(cpc.clone());
                        pcoll_node.insert(cpc.clone(), child);
                        outputs.push((tag.to_string(), cpc));
                    }
                }
                let mut sides = BTreeMap::new();
                for (k, &v) in node.views.iter().enumerate() {
                    let view = &graph.nodes[v];
                    let spc = node_pcoll[view.inputs[0]].clone().ok_or_else(|| {
                        anyhow::anyhow!("internal: side input '{}' has no collection", view.label)
                    })?;
                    sides.insert(side_input_id(k), (spc, view.label.clone()));
                }
                let main = input_pc(0)?;
                let id = t.pardo(
                    &tid,
                    &node.label,
                    &main,
                    outputs,
                    Role::ParDo(i),
                    &node.label,
                    sides,
                );
                roots.push(id);
            }
            Primitive::GroupByKey => {
                let main = input_pc(0)?;
                t.primitive(
                    &tid,
                    &node.label,
                    GROUP_BY_KEY,
                    vec![("in".into(), main)],
                    pc.clone(),
                );
                roots.push(tid);
            }
            Primitive::Flatten => {
                let inputs = (0..node.inputs.len())
                    .map(|k| Ok((k.to_string(), input_pc(k)?)))
                    .collect::<Result<Vec<_>>>()?;
                t.primitive(&tid, &node.label, FLATTEN, inputs, pc.clone());
                roots.push(tid);
            }
            Primitive::CombinePerKey => {
                let lifted = node
                    .combine
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("internal: '{}' has no combine", node.label))?;
                let main = input_pc(0)?;
                let in_coder = graph.nodes[node.inputs[0]].codec.coder();
                let (key, value) = match &in_coder.components[..] {
                    [k, v] => (k.clone(), v.clone()),
                    _ => bail!("internal: the input of '{}' is not a KV", node.label),
                };
                let acc = t.coder(&lifted.accumulator_coder());
                let payload = rapi::CombinePayload {
                    combine_fn: Some(fn_spec(COMBINE_FN_URN, &node.label, Role::Combine(i))),
                    accumulator_coder_id: acc,
                }
                .encode_to_vec();
                // A global combine's result goes through InjectDefault.
                let inject = lifted.global_default() && node.windowing == WindowFn::Global;
                let combined = if inject {
                    let c = t.pcollection(
                        &format!("{tid}-combined"),
                        &format!("{}/Combined", node.label),
                        &coder,
                        &windowing,
                    );
                    pcoll_node.insert(c.clone(), i);
                    c
                } else {
                    pc.clone()
                };
                let grouped_coder = t.coder(&CoderSpec::with(
                    "beam:coder:kv:v1",
                    vec![key, CoderSpec::with("beam:coder:iterable:v1", vec![value])],
                ));
                let gid = t.transform_id(&format!("{}/Group", node.label));
                let gpc = t.pcollection(
                    &format!("{gid}-out"),
                    &format!("{}/Group", node.label),
                    &grouped_coder,
                    &windowing,
                );
                t.primitive(
                    &gid,
                    &format!("{}/Group", node.label),
                    GROUP_BY_KEY,
                    vec![("in".into(), main.clone())],
                    gpc.clone(),
                );
                let cid = t.transform_id(&format!("{}/Combine", node.label));
                t.transform(
                    &cid,
                    rapi::PTransform {
                        unique_name: format!("{}/Combine", node.label),
                        spec: Some(rapi::FunctionSpec {
                            urn: COMBINE_GROUPED_VALUES.into(),
                            payload: payload.clone(),
                        }),
                        inputs: [("in".to_string(), gpc)].into(),
                        outputs: [("out".to_string(), combined.clone())].into(),
                        environment_id: ENVIRONMENT_ID.into(),
                        ..Default::default()
                    },
                );
                t.transform(
                    &tid,
                    rapi::PTransform {
                        unique_name: node.label.clone(),
                        spec: Some(rapi::FunctionSpec {
                            urn: COMBINE_PER_KEY.into(),
                            payload,
                        }),
                        subtransforms: vec![gid, cid],
                        inputs: [("in".to_string(), main)].into(),
                        outputs: [("out".to_string(), combined.clone())].into(),
                        environment_id: ENVIRONMENT_ID.into(),
                        ..Default::default()
                    },
                );
                roots.push(tid);
                if inject {
                    let l = &node.label;
                    let (imp_id, imp) = t.impulse(&format!("{l}/DoOnce"));
                    let inject_id = t.transform_id(&format!("{l}/InjectDefault"));
                    let sides = [(
                        COMBINED_SIDE_INPUT.to_string(),
                        (combined, format!("{l}/Combined")),
                    )]
                    .into();
                    t.pardo(
                        &inject_id,
                        &format!("{l}/InjectDefault"),
                        &imp,
                        vec![("out".into(), pc.clone())],
                        Role::InjectDefault(i),
                        l,
                        sides,
                    );
                    roots.push(imp_id);
                    roots.push(inject_id);
                }
            }
            Primitive::WriteFiles => {
                let main = input_pc(0)?;
                let shard_coder = t.coder(&<(i64, String)>::coder_spec());
                let grouped_coder = t.coder(&<(i64, Vec<String>)>::coder_spec());
                let global = t.windowing(WindowFn::Global);
                let l = &node.label;
                let shard_id = t.transform_id(&format!("{l}/Shard"));
                let gid = t.transform_id(&format!("{l}/Group"));
                let write_id = t.transform_id(&format!("{l}/WriteShards"));
                let fin_id = t.transform_id(&format!("{l}/Finalize"));
                let spc = t.pcollection(
                    &format!("{shard_id}-out"),
                    &format!("{l}/Shard"),
                    &shard_coder,
                    &global,
                );
                let gpc = t.pcollection(
                    &format!("{gid}-out"),
                    &format!("{l}/Group"),
                    &grouped_coder,
                    &global,
                );
                let wpc = t.pcollection(
                    &format!("{write_id}-out"),
                    &format!("{l}/WriteShards"),
                    &shard_coder,
                    &global,
                );
                let shard = t.pardo(
                    &shard_id,
                    &format!("{}/Shard", node.label),
                    &main,
                    vec![("out".into(), spc.clone())],
                    Role::WriteShard(i),
                    &node.label,
                    BTreeMap::new(),
                );
                t.primitive(
                    &gid,
                    &format!("{}/Group", node.label),
                    GROUP_BY_KEY,
                    vec![("in".into(), spc)],
                    gpc.clone(),
                );
                let write = t.pardo(
                    &write_id,
                    &format!("{}/WriteShards", node.label),
                    &gpc,
                    vec![("out".into(), wpc.clone())],
                    Role::WriteShards(i),
                    &node.label,
                    BTreeMap::new(),
                );
                let (imp_id, imp) = t.impulse(&format!("{l}/Finalize/Impulse"));
                let sides = [(
                    WRITTEN_SIDE_INPUT.to_string(),
                    (wpc, format!("{l}/WriteShards")),
                )]
                .into();
                let fin = t.pardo(
                    &fin_id,
                    &format!("{}/Finalize", node.label),
                    &imp,
                    vec![("out".into(), pc.clone())],
                    Role::Finalize(i),
                    &node.label,
                    sides,
                );
                t.composite(
                    &tid,
                    &node.label,
                    None,
                    vec![("in".into(), main)],
                    pc.clone(),
                    vec![shard, gid, write, imp_id, fin],
                );
                roots.push(tid);
            }
            Primitive::Identity
            | Primitive::Reshuffle
            | Primitive::View
            | Primitive::Assert
            | Primitive::TaggedOutput => unreachable!("handled above"),
        }
    }
    let plan_hash = plan_hash(graph);
    let pipeline = rapi::Pipeline {
        components: Some(t.components),
        root_transform_ids: roots,
        display_data: Vec::new(),
        requirements: Vec::new(),
    };
    Ok(Translation {
        pipeline,
        pcoll_node,
        labels: t.labels,
        plan_hash,
    })
}

/// A hash of what the graph is made of (labels, kinds, inputs, coders,
/// parameters): FNV-1a, stable across builds and platforms.
pub(crate) fn plan_hash(graph: &Graph) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in &graph.nodes {
        feed(&n.label);
        feed(n.kind);
        feed(&format!("{:?}", n.inputs));
        feed(&format!("{:?}", n.views));
        feed(&n.codec.coder().to_string());
        feed(&n.spec.to_string());
    }
    format!("{h:016x}")
}

/// `[A-Za-z0-9_-]` of a label, the rest as `-`.
pub(crate) fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "t".into() } else { s }
}

fn fn_spec(urn: &str, label: &str, role: Role) -> rapi::FunctionSpec {
    let payload = FnPayload {
        node: label.to_string(),
        role: role.name().to_string(),
    };
    rapi::FunctionSpec {
        urn: urn.to_string(),
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
    }
}

#[derive(Default)]
struct Builder {
    components: rapi::Components,
    coder_ids: HashMap<CoderSpec, String>,
    labels: HashMap<String, String>,
    windowing_ids: HashMap<String, String>,
}

impl Builder {
    /// A unique transform id for `label`.
    fn transform_id(&mut self, label: &str) -> String {
        let base = sanitize(label);
        let mut id = base.clone();
        let mut k = 2;
        while self.labels.contains_key(&id) {
            id = format!("{base}-{k}");
            k += 1;
        }
        self.labels.insert(id.clone(), label.to_string());
        id
    }

    fn transform(&mut self, id: &str, t: rapi::PTransform) {
        self.labels.insert(id.to_string(), t.unique_name.clone());
        self.components.transforms.insert(id.to_string(), t);
    }

    /// The id of `spec`'s coder, declaring it and its components.
    fn coder(&mut self, spec: &CoderSpec) -> String {
        if let Some(id) = self.coder_ids.get(spec) {
            return id.clone();
        }
        let components: Vec<String> = spec.components.iter().map(|c| self.coder(c)).collect();
        // Readable ids: `kv(string_utf8,varint)`.
        let mut id = spec.to_string().replace(' ', "");
        while self.components.coders.contains_key(&id) {
            id.push('_');
        }
        self.components.coders.insert(
            id.clone(),
            rapi::Coder {
                spec: Some(rapi::FunctionSpec {
                    urn: spec.urn.clone(),
                    payload: Vec::new(),
                }),
                component_coder_ids: components,
            },
        );
        self.coder_ids.insert(spec.clone(), id.clone());
        id
    }

    /// The id of a windowing strategy with `window_fn`.
    fn windowing(&mut self, window_fn: WindowFn) -> String {
        let (key, urn, payload, window_coder) = match window_fn {
            WindowFn::Global => (
                "global".to_string(),
                "beam:window_fn:global_windows:v1",
                Vec::new(),
                "beam:coder:global_window:v1",
            ),
            WindowFn::Fixed { size, offset } => (
                format!("fixed-{size}-{offset}"),
                "beam:window_fn:fixed_windows:v1",
                rapi::FixedWindowsPayload {
                    size: Some(duration(size)),
                    offset: Some(timestamp(offset)),
                }
                .encode_to_vec(),
                "beam:coder:interval_window:v1",
            ),
            WindowFn::Sliding {
                size,
                period,
                offset,
            } => (
                format!("sliding-{size}-{period}-{offset}"),
                "beam:window_fn:sliding_windows:v1",
                rapi::SlidingWindowsPayload {
                    size: Some(duration(size)),
                    offset: Some(timestamp(offset)),
                    period: Some(duration(period)),
                }
                .encode_to_vec(),
                "beam:coder:interval_window:v1",
            ),
        };
        if let Some(id) = self.windowing_ids.get(&key) {
            return id.clone();
        }
        let window_coder_id = self.coder(&CoderSpec::leaf(window_coder));
        let strategy = rapi::WindowingStrategy {
            window_fn: Some(rapi::FunctionSpec {
                urn: urn.into(),
                payload,
            }),
            merge_status: rapi::merge_status::Enum::NonMerging as i32,
            window_coder_id,
            trigger: Some(rapi::Trigger {
                trigger: Some(rapi::trigger::Trigger::Default(rapi::trigger::Default {})),
            }),
            accumulation_mode: rapi::accumulation_mode::Enum::Discarding as i32,
            output_time: rapi::output_time::Enum::EndOfWindow as i32,
            closing_behavior: rapi::closing_behavior::Enum::EmitIfNonempty as i32,
            allowed_lateness: 0,
            on_time_behavior: rapi::on_time_behavior::Enum::FireIfNonempty as i32,
            assigns_to_one_window: !matches!(window_fn, WindowFn::Sliding { .. }),
            environment_id: ENVIRONMENT_ID.into(),
        };
        self.components
            .windowing_strategies
            .insert(key.clone(), strategy);
        self.windowing_ids.insert(key.clone(), key.clone());
        key
    }

    /// A collection id not used yet, from `base`.
    fn pcoll_id(&self, base: &str) -> String {
        let mut id = base.to_string();
        let mut k = 2;
        while self.components.pcollections.contains_key(&id) {
            id = format!("{base}-{k}");
            k += 1;
        }
        id
    }

    /// Declares a collection under a fresh id from `base`; returns the id.
    fn pcollection(&mut self, base: &str, label: &str, coder: &str, windowing: &str) -> String {
        let id = self.pcoll_id(base);
        self.components.pcollections.insert(
            id.clone(),
            rapi::PCollection {
                unique_name: format!("{label}.out"),
                coder_id: coder.to_string(),
                is_bounded: rapi::is_bounded::Enum::Bounded as i32,
                windowing_strategy_id: windowing.to_string(),
                display_data: Vec::new(),
            },
        );
        id
    }

    /// An Impulse labelled `label`; returns its id and output collection.
    fn impulse(&mut self, label: &str) -> (String, String) {
        let id = self.transform_id(label);
        let bytes = self.coder(&CoderSpec::leaf("beam:coder:bytes:v1"));
        let global = self.windowing(WindowFn::Global);
        let pc = self.pcollection(&format!("{id}-out"), label, &bytes, &global);
        self.transform(
            &id,
            rapi::PTransform {
                unique_name: label.to_string(),
                spec: Some(rapi::FunctionSpec {
                    urn: IMPULSE.into(),
                    payload: Vec::new(),
                }),
                outputs: [("out".to_string(), pc.clone())].into(),
                ..Default::default()
            },
        );
        (id, pc)
    }

    /// A ParDo running `role` of the node labelled `node`; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn pardo(
        &mut self,
        id: &str,
        unique_name: &str,
        main: &str,
        outputs: Vec<(String, String)>,
        role: Role,
        node: &str,
        sides: BTreeMap<String, (String, String)>,
    ) -> String {
        let mut inputs: HashMap<String, String> = [("in".to_string(), main.to_string())].into();
        let mut side_inputs = HashMap::new();
        for (sid, (pc, view)) in sides {
            inputs.insert(sid.clone(), pc);
            side_inputs.insert(
                sid,
                rapi::SideInput {
                    access_pattern: Some(rapi::FunctionSpec {
                        urn: ITERABLE_SIDE_INPUT.into(),
                        payload: Vec::new(),
                    }),
                    view_fn: Some(rapi::FunctionSpec {
                        urn: "bigflow:view:v1".into(),
                        payload: view.into_bytes(),
                    }),
                    window_mapping_fn: Some(rapi::FunctionSpec {
                        urn: "beam:window_mapping_fn:global:v1".into(),
                        payload: Vec::new(),
                    }),
                },
            );
        }
        let payload = rapi::ParDoPayload {
            do_fn: Some(fn_spec(DOFN_URN, node, role)),
            side_inputs,
            ..Default::default()
        };
        self.transform(
            id,
            rapi::PTransform {
                unique_name: unique_name.to_string(),
                spec: Some(rapi::FunctionSpec {
                    urn: PARDO.into(),
                    payload: payload.encode_to_vec(),
                }),
                inputs,
                outputs: outputs.into_iter().collect(),
                environment_id: ENVIRONMENT_ID.into(),
                ..Default::default()
            },
        );
        id.to_string()
    }

    /// A runner-executed primitive (GroupByKey, Flatten).
    fn primitive(
        &mut self,
        id: &str,
        label: &str,
        urn: &str,
        inputs: Vec<(String, String)>,
        out: String,
    ) {
        self.transform(
            id,
            rapi::PTransform {
                unique_name: label.to_string(),
                spec: Some(rapi::FunctionSpec {
                    urn: urn.into(),
                    payload: Vec::new(),
                }),
                inputs: inputs.into_iter().collect(),
                outputs: [("out".to_string(), out)].into(),
                ..Default::default()
            },
        );
    }

    /// A composite of `parts`.
    fn composite(
        &mut self,
        id: &str,
        label: &str,
        spec: Option<rapi::FunctionSpec>,
        inputs: Vec<(String, String)>,
        out: String,
        parts: Vec<String>,
    ) {
        self.transform(
            id,
            rapi::PTransform {
                unique_name: label.to_string(),
                spec,
                subtransforms: parts,
                inputs: inputs.into_iter().collect(),
                outputs: [("out".to_string(), out)].into(),
                ..Default::default()
            },
        );
    }
}

fn duration(micros: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A readable listing of a pipeline (sorted, one item a line), for
/// snapshots and `--dry-run`-style inspection.
pub(crate) fn describe(p: &rapi::Pipeline) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let Some(c) = &p.components else {
        return out;
    };
    let _ = writeln!(out, "roots: {}", p.root_transform_ids.join(", "));
    let mut ids: Vec<&String> = c.transforms.keys().collect();
    ids.sort();
    let _ = writeln!(out, "transforms:");
    for id in ids {
        let t = &c.transforms[id];
        let urn = t
            .spec
            .as_ref()
            .map(|s| s.urn.as_str())
            .unwrap_or("(composite)");
        let sorted = |m: &HashMap<String, String>| {
            let mut v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            v.sort();
            v.join(" ")
        };
        let mut line = format!("  {id} [{}] {urn}", t.unique_name);
        if let Some(s) = &t.spec
            && s.urn == PARDO
            && let Ok(pd) = rapi::ParDoPayload::decode(s.payload.as_slice())
            && let Some(f) = pd.do_fn
        {
            let _ = write!(line, " {}", String::from_utf8_lossy(&f.payload));
            let mut sides: Vec<&String> = pd.side_inputs.keys().collect();
            sides.sort();
            if !sides.is_empty() {
                let _ = write!(
                    line,
                    " sides=[{}]",
                    sides
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        let _ = write!(
            line,
            " in({}) out({})",
            sorted(&t.inputs),
            sorted(&t.outputs)
        );
        if !t.subtransforms.is_empty() {
            let _ = write!(line, " parts({})", t.subtransforms.join(", "));
        }
        if !t.environment_id.is_empty() {
            let _ = write!(line, " env={}", t.environment_id);
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "pcollections:");
    let mut ids: Vec<&String> = c.pcollections.keys().collect();
    ids.sort();
    for id in ids {
        let pc = &c.pcollections[id];
        let _ = writeln!(
            out,
            "  {id} coder={} windowing={}",
            pc.coder_id, pc.windowing_strategy_id
        );
    }
    let _ = writeln!(out, "coders:");
    let mut ids: Vec<&String> = c.coders.keys().collect();
    ids.sort();
    for id in ids {
        let cd = &c.coders[id];
        let urn = cd.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let _ = writeln!(out, "  {id} {urn} [{}]", cd.component_coder_ids.join(", "));
    }
    let _ = writeln!(out, "windowing strategies:");
    let mut ids: Vec<&String> = c.windowing_strategies.keys().collect();
    ids.sort();
    for id in ids {
        let w = &c.windowing_strategies[id];
        let urn = w.window_fn.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let _ = writeln!(out, "  {id} {urn} window_coder={}", w.window_coder_id);
    }
    let _ = writeln!(out, "environments:");
    let mut ids: Vec<&String> = c.environments.keys().collect();
    ids.sort();
    for id in ids {
        let _ = writeln!(out, "  {id} {}", c.environments[id].urn);
    }
    out
}
