//! Our coders against Beam's own test vectors: `standard_coders.yaml` from
//! the apache-beam 2.77 wheel (the peer venv `scripts/test` installs), read
//! through that venv's Python as JSON. Every example of every coder we
//! implement must decode to the expected value and encode back to the same
//! bytes, in the contexts the file names (nested, outer, or both). Coders we
//! do not implement yet (rows, timers, windowed values, …) are listed, not
//! silently passed.

use bigflow_beam::coders::{Bytes, Coded, decode_nested, encode_to_vec};
use bigflow_beam::window::Window;
use bigflow_beam::wire::{Pane, Timing, WindowCoder, WireValue, decode_window, encode_window};
use serde_json::Value;

/// The test vectors as JSON documents (`None`: the peer is missing).
fn vectors() -> Option<Vec<Value>> {
    let python = bigflow_testkit::beam_python()?;
    // Keys are the encoded bytes as text with \x escapes (code points < 256).
    let script = r#"
import json, os, yaml, apache_beam
path = os.path.join(os.path.dirname(apache_beam.__file__), "portability/api/standard_coders.yaml")
docs = [d for d in yaml.safe_load_all(open(path)) if d]
out = []
for d in docs:
    examples = [[[ord(c) for c in k], v] for k, v in d["examples"].items()]
    out.append({"coder": d["coder"], "nested": d.get("nested"), "examples": examples})
print(json.dumps(out, default=str))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The coder's spec as text, e.g. `kv[bytes,varint]`.
fn spec(coder: &Value) -> String {
    let urn = coder["urn"].as_str().unwrap();
    let name = urn
        .trim_start_matches("beam:coder:")
        .trim_end_matches(":v1");
    match coder["components"].as_array() {
        Some(c) if !c.is_empty() => format!(
            "{name}[{}]",
            c.iter().map(spec).collect::<Vec<_>>().join(",")
        ),
        _ => name.to_string(),
    }
}

/// How a YAML value reads as one of our Rust values.
trait FromExample: Sized {
    fn from_example(v: &Value) -> Self;
}

impl FromExample for Bytes {
    fn from_example(v: &Value) -> Self {
        // Bytes values are text whose code points are the bytes.
        Bytes(
            v.as_str()
                .unwrap()
                .chars()
                .map(|c| c as u32 as u8)
                .collect(),
        )
    }
}

impl FromExample for String {
    fn from_example(v: &Value) -> Self {
        v.as_str().unwrap().to_string()
    }
}

impl FromExample for i64 {
    fn from_example(v: &Value) -> Self {
        v.as_i64().unwrap()
    }
}

impl FromExample for bool {
    fn from_example(v: &Value) -> Self {
        v.as_bool().unwrap()
    }
}

impl FromExample for f64 {
    fn from_example(v: &Value) -> Self {
        match v {
            Value::String(s) => match s.as_str() {
                "NaN" | "nan" => f64::NAN,
                "Infinity" | "inf" => f64::INFINITY,
                "-Infinity" | "-inf" => f64::NEG_INFINITY,
                other => other.parse().unwrap(),
            },
            other => other.as_f64().unwrap(),
        }
    }
}

impl<K: FromExample, V: FromExample> FromExample for (K, V) {
    fn from_example(v: &Value) -> Self {
        (K::from_example(&v["key"]), V::from_example(&v["value"]))
    }
}

impl<T: FromExample> FromExample for Vec<T> {
    fn from_example(v: &Value) -> Self {
        v.as_array().unwrap().iter().map(T::from_example).collect()
    }
}

/// A checker of one example for one Rust type.
type Check = fn(&[u8], &Value, Option<bool>, bool) -> Result<(), String>;

/// Checks one example in the contexts `nested` asks for; `Err` says what
/// differed. Examples of non-deterministic encodings (iterables of unknown
/// length) are decoded only, as Beam's own coder tests do.
fn check<T>(
    bytes: &[u8],
    expected: &Value,
    nested: Option<bool>,
    deterministic: bool,
) -> Result<(), String>
where
    T: Coded + FromExample + std::fmt::Debug,
{
    let want = T::from_example(expected);
    // Compare through the encoding: NaN != NaN, but its bytes are equal.
    let same = |got: &T| encode_to_vec(got) == encode_to_vec(&want);
    if nested != Some(false) {
        let got = decode_nested::<T>(bytes).map_err(|e| format!("nested decode: {e}"))?;
        if !same(&got) {
            return Err(format!("nested: decoded {got:?}, expected {want:?}"));
        }
        if deterministic && encode_to_vec(&want) != bytes {
            return Err(format!(
                "nested: {want:?} encodes to {:?}",
                encode_to_vec(&want)
            ));
        }
    }
    if nested != Some(true) {
        let got = T::decode_outer(bytes).map_err(|e| format!("outer decode: {e}"))?;
        if !same(&got) {
            return Err(format!("outer: decoded {got:?}, expected {want:?}"));
        }
        let mut out = Vec::new();
        want.encode_outer(&mut out);
        if deterministic && out != bytes {
            return Err(format!("outer: {want:?} encodes to {out:?}"));
        }
    }
    Ok(())
}

/// A window as the YAML gives it: `"global"` or `{end, span}` in milliseconds.
fn window_of(v: &Value) -> Window {
    match v {
        Value::String(_) => Window::Global,
        w => {
            let end = w["end"].as_i64().unwrap() * 1000;
            Window::Interval {
                start: end - w["span"].as_i64().unwrap() * 1000,
                end,
            }
        }
    }
}

fn check_window(coder: WindowCoder, bytes: &[u8], expected: &Value) -> Result<(), String> {
    let want = window_of(expected);
    let mut input = bytes;
    let got = decode_window(coder, &mut input).map_err(|e| e.to_string())?;
    if got != want || !input.is_empty() {
        return Err(format!("decoded {got}, expected {want}"));
    }
    let mut out = Vec::new();
    encode_window(&want, coder, &mut out).map_err(|e| e.to_string())?;
    if out != bytes {
        return Err(format!("{want} encodes to {out:?}"));
    }
    Ok(())
}

fn check_windowed_varint(coder: WindowCoder, bytes: &[u8], expected: &Value) -> Result<(), String> {
    let pane = &expected["pane"];
    let timing = match pane["timing"].as_str().unwrap() {
        "EARLY" => Timing::Early,
        "ON_TIME" => Timing::OnTime,
        "LATE" => Timing::Late,
        _ => Timing::Unknown,
    };
    let want = WireValue {
        value: expected["value"].as_i64().unwrap(),
        timestamp: expected["timestamp"].as_i64().unwrap() * 1000,
        windows: expected["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(window_of)
            .collect(),
        pane: Pane {
            is_first: pane["is_first"].as_bool().unwrap(),
            is_last: pane["is_last"].as_bool().unwrap(),
            timing,
            index: pane["index"].as_u64().unwrap(),
            on_time_index: pane["on_time_index"].as_u64().unwrap(),
        },
    };
    let mut input = bytes;
    let got = WireValue::<i64>::decode(coder, &mut input).map_err(|e| e.to_string())?;
    if got != want || !input.is_empty() {
        return Err(format!("decoded {got:?}, expected {want:?}"));
    }
    let mut out = Vec::new();
    want.encode(coder, &mut out).map_err(|e| e.to_string())?;
    if out != bytes {
        return Err(format!("{want:?} encodes to {out:?}"));
    }
    Ok(())
}

#[test]
fn every_applicable_case_of_beams_standard_coders_yaml() {
    let Some(docs) = vectors() else {
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut not_ours = std::collections::BTreeSet::new();
    for doc in &docs {
        let spec = spec(&doc["coder"]);
        let nested = doc["nested"].as_bool();
        let deterministic = !doc["coder"]["non_deterministic"].as_bool().unwrap_or(false);
        let run: Option<Check> = match spec.as_str() {
            "bytes" => Some(check::<Bytes>),
            "string_utf8" => Some(check::<String>),
            "varint" => Some(check::<i64>),
            "bool" => Some(check::<bool>),
            "double" => Some(check::<f64>),
            "kv[bytes,varint]" => Some(check::<(Bytes, i64)>),
            "kv[bytes,bytes]" => Some(check::<(Bytes, Bytes)>),
            "kv[bytes,bool]" => Some(check::<(Bytes, bool)>),
            "iterable[varint]" => Some(check::<Vec<i64>>),
            "iterable[bytes]" => Some(check::<Vec<Bytes>>),
            "iterable[bool]" => Some(check::<Vec<bool>>),
            "global_window" => Some(|b, e, _, _| check_window(WindowCoder::Global, b, e)),
            "interval_window" => Some(|b, e, _, _| check_window(WindowCoder::Interval, b, e)),
            "windowed_value[varint,global_window]" => {
                Some(|b, e, _, _| check_windowed_varint(WindowCoder::Global, b, e))
            }
            "windowed_value[varint,interval_window]" => {
                Some(|b, e, _, _| check_windowed_varint(WindowCoder::Interval, b, e))
            }
            _ => None,
        };
        let Some(run) = run else {
            not_ours.insert(spec);
            continue;
        };
        for example in doc["examples"].as_array().unwrap() {
            let bytes: Vec<u8> = example[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect();
            checked += 1;
            if let Err(e) = run(&bytes, &example[1], nested, deterministic) {
                failures.push(format!("{spec} {:?}: {e}", example[1]));
            }
        }
    }
    eprintln!(
        "standard_coders.yaml: {checked} examples checked; coders not implemented here: {}",
        not_ours.into_iter().collect::<Vec<_>>().join(", ")
    );
    assert!(checked >= 60, "only {checked} examples matched our coders");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
