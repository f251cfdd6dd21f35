//! The model's hostile-input suite: generated runtimes, schedules, names,
//! templates and configuration documents (the `[deployment]` tables of
//! `bigflow.toml` use the same reader). Oracle: every input gets a value or
//! an error, never a panic or a hang (each case runs under a time limit).
//!
//! Deterministic by default (proptest's fixed-seed runner); `BIGFLOW_FUZZ_CASES`
//! sets the cases per property (default 256) and `PROPTEST_RNG_SEED` another
//! seed. Each property prints how many cases it ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bigflow_core::config::Config;
use bigflow_core::interpolate::interpolate;
use bigflow_core::runtime::{format_runtime, parse_runtime};
use bigflow_core::schedule::{Schedule, StartTimeFactory};
use bigflow_core::{JobRef, Project, Workflow, job};
use bigflow_testkit::fuzz;
use proptest::prelude::*;

/// Longest one case may take; generous for a loaded 2-core debug build.
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Runs `check` on generated inputs, each on a thread with a time limit,
/// and reports how many ran.
fn fuzz<S>(name: &str, strategy: S, check: fn(S::Value) -> Result<(), String>)
where
    S: Strategy,
    S::Value: std::fmt::Debug + Send + 'static,
{
    let mut runner = fuzz::runner(256, 1024);
    let ran = AtomicU64::new(0);
    let result = runner.run(&strategy, |input| {
        ran.fetch_add(1, Ordering::Relaxed);
        fuzz::within(CASE_LIMIT, input, check)
    });
    eprintln!("fuzz {name}: {} cases", ran.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// Text that looks like a runtime, nearly does, or is anything at all.
fn runtime_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        (
            prop_oneof![Just(-1i64), 0i64..=10_000, Just(99_999), Just(i64::MAX)],
            0u32..=13,
            0u32..=32,
            0u32..=25,
            0u32..=61,
            0u32..=61
        )
            .prop_map(|(y, mo, d, h, mi, s)| format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"
            )),
        (0i64..=10_000, 0u32..=13, 0u32..=32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        Just("0001-01-01 00:00:00".to_string()),
        Just("9999-12-31 23:59:59".to_string()),
        Just("2020-01-01\u{0}".to_string()),
    ]
}

#[test]
fn runtimes() {
    fuzz("runtimes", runtime_text(), |text| {
        if let Ok(rt) = parse_runtime(&text) {
            // A parsed runtime prints and reparses to itself, and every start
            // time factory and the manifest can use it.
            let printed = format_runtime(&rt);
            if parse_runtime(&printed).ok() != Some(rt) {
                return Err(format!("'{printed}' does not reparse"));
            }
            for factory in [StartTimeFactory::daily(), StartTimeFactory::hourly()] {
                let _ = factory.apply(rt);
            }
            let project = Project::new("p", "1.0").workflow(
                Workflow::builder("wf")
                    .schedule_interval("*/5 * * * *")
                    .jobs([JobRef::new(job("j", |_| Ok(())))]),
            );
            serde_json::to_string(&project.manifest(Some(rt))).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
}

/// Cron-like text: five fields from a cron alphabet, presets, or anything.
fn schedule_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        "[0-9]{1,3}",
        "[0-9]{1,2}-[0-9]{1,2}",
        "\\*/[0-9]{1,3}",
        "[0-9]{1,2}(,[0-9]{1,2}){1,3}",
        "[A-Z]{3}",
        "[0-9*/,\\-LW#?]{1,6}",
        Just("4294967296".to_string()),
    ];
    prop_oneof![
        proptest::collection::vec(field, 0..=7).prop_map(|f| f.join(" ")),
        "@[a-z]{0,10}",
        "\\PC{0,20}",
    ]
}

#[test]
fn schedules() {
    fuzz("schedules", schedule_text(), |text| {
        let _ = Schedule::parse(&text);
        // A workflow with it either builds or is refused with a message.
        let built = Workflow::builder("wf")
            .schedule_interval(&text)
            .jobs([JobRef::new(job("j", |_| Ok(())))])
            .build();
        if let Err(e) = built
            && e.to_string().is_empty()
        {
            return Err("an empty error".into());
        }
        Ok(())
    });
}

/// Names users give workflows and jobs.
fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,10}",
        "\\PC{0,20}",
        "[a-zA-Z0-9_.\\-/ ]{0,12}",
        Just(String::new()),
        Just("x".repeat(10_000)),
    ]
}

#[test]
fn names() {
    fuzz("names", (name_text(), name_text()), |(wf, j)| {
        let project = Project::new("p", "1.0").workflow(
            Workflow::builder(wf.clone()).jobs([JobRef::new(job(j.as_str(), |_| Ok(())))]),
        );
        match project.validate() {
            Ok(()) => {
                project.find_workflow(&wf).map_err(|e| e.to_string())?;
                project.find_job(&wf, &j).map_err(|e| e.to_string())?;
            }
            Err(e) if e.to_string().is_empty() => return Err("an empty error".into()),
            Err(_) => {}
        }
        let _ = project.find_workflow(&j);
        Ok(())
    });
}

/// Templates with placeholders, escapes and broken braces.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z ]{0,5}",
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        "\\{[a-z_.]{0,4}\\}",
        "\\PC{0,3}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

#[test]
fn templates() {
    fuzz("templates", template_text(), |text| {
        let _ = interpolate(&text, |name| (name.len() % 2 == 0).then(|| name.repeat(3)));
        Ok(())
    });
}

/// A `[deployment]`-style TOML document: settings, environments, properties
/// referring to each other (including chains that double at each step),
/// values of every TOML type.
fn config_document() -> impl Strategy<Value = String> {
    let env_name = prop_oneof![
        Just("dev".to_string()),
        Just("prod".to_string()),
        Just("master".to_string()),
        Just("default".to_string()),
        "[a-z]{1,6}",
        Just("\"é\"".to_string()),
        Just("\"\"".to_string()),
    ];
    let value = prop_oneof![
        "\"[a-z{}_ ]{0,12}\"",
        "\"\\{k[0-4]\\}\\{k[0-4]\\}\"",
        Just("\"{env}\"".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1.5e308".to_string()),
        Just("true".to_string()),
        Just("[1, \"{k0}\", [\"{k1}\"]]".to_string()),
        Just("{ a = \"{k2}\", b = { c = \"{env}\" } }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    let env =
        (env_name, proptest::collection::vec(("k[0-4]", value), 0..6)).prop_map(|(name, props)| {
            let body: String = props.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            format!("[{name}]\n{body}")
        });
    let settings = prop_oneof![
        Just(String::new()),
        Just("master = \"dev\"\n".to_string()),
        Just("default = \"prod\"\n".to_string()),
        Just("default = 3\n".to_string()),
        Just("env_prefix = \"\"\n".to_string()),
        "[a-z_]{1,8} = \"[a-z]{0,4}\"\n",
    ];
    let doubling = (1usize..40).prop_map(|levels| {
        let mut doc = String::from("[dev]\nd0 = \"abcdefgh\"\n");
        for n in 1..=levels {
            doc.push_str(&format!("d{n} = \"{{d{0}}}{{d{0}}}\"\n", n - 1));
        }
        doc
    });
    prop_oneof![
        4 => (settings, proptest::collection::vec(env, 0..4)).prop_map(|(s, e)| format!("{s}{}", e.concat())),
        1 => doubling,
        1 => "\\PC{0,60}",
    ]
}

#[test]
fn config_documents() {
    fuzz("config documents", config_document(), |text| {
        let Ok(table) = text.parse::<toml::Table>() else {
            return Ok(());
        };
        let Ok(config) = Config::from_toml(&table, "bigflow.toml [deployment]") else {
            return Ok(());
        };
        let no_vars = |_: &str| None;
        let _ = config.resolve_with(None, &no_vars);
        let envs: Vec<String> = config.env_names().map(String::from).collect();
        for env in envs {
            if let Ok(resolved) = config.resolve_with(Some(&env), &no_vars) {
                let _ = resolved.pretty_print();
            }
        }
        let _ = config.pretty_print_with(&no_vars);
        Ok(())
    });
}
