//! `start-project`: writes a new BigFlow project that compiles and runs.
//!
//! Templates live in `templates/start-project/` and are rendered with
//! minijinja; example workflows are copied verbatim from the
//! `bigflow-examples` package, so the starter and the examples never drift.

use std::path::{Path, PathBuf};

use minijinja::{Environment, context};

use crate::error::{Result, ToolError};

/// (path in the new project, template source, rendered through minijinja?)
const FILES: &[(&str, &str, bool)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/start-project/Cargo.toml.j2"),
        true,
    ),
    (
        "bigflow.toml",
        include_str!("../templates/start-project/bigflow.toml.j2"),
        true,
    ),
    (
        "README.md",
        include_str!("../templates/start-project/README.md.j2"),
        true,
    ),
    (
        ".gitignore",
        include_str!("../templates/start-project/gitignore.j2"),
        true,
    ),
    (
        "src/main.rs",
        include_str!("../templates/start-project/src/main.rs.j2"),
        true,
    ),
    (
        "src/lib.rs",
        include_str!("../templates/start-project/src/lib.rs.j2"),
        true,
    ),
    (
        "src/workflows/mod.rs",
        include_str!("../templates/start-project/src/workflows/mod.rs.j2"),
        true,
    ),
    (
        "src/workflows/hello_world.rs",
        include_str!("../../../examples/bigflow-examples/src/workflows/hello_world.rs"),
        false,
    ),
    (
        "src/workflows/internationalports.rs",
        include_str!("../../../examples/bigflow-examples/src/workflows/internationalports.rs"),
        false,
    ),
    (
        "src/workflows/pi_estimator.rs",
        include_str!("../../../examples/bigflow-examples/src/workflows/pi_estimator.rs"),
        false,
    ),
    (
        "resources/pi_estimator.py",
        include_str!("../../../examples/bigflow-examples/resources/pi_estimator.py"),
        false,
    ),
    (
        "src/workflows/wordcount.rs",
        include_str!("../../../examples/bigflow-examples/src/workflows/wordcount.rs"),
        false,
    ),
    (
        "resources/wordcount.txt",
        include_str!("../../../examples/bigflow-examples/resources/wordcount.txt"),
        false,
    ),
    (
        "tests/hello_world.rs",
        include_str!("../templates/start-project/tests/hello_world.rs.j2"),
        true,
    ),
    (
        "resources/README.md",
        include_str!("../templates/start-project/resources/README.md.j2"),
        true,
    ),
];

/// Where the generated project gets the `bigflow` crate from.
#[derive(Debug, Clone)]
pub enum BigflowSource {
    /// The checkout this tool was built from (`cargo install --path
    /// crates/bigflow-cli`): its `crates/bigflow`, if it is still there.
    ToolCheckout,
    /// A local checkout of the `bigflow` crate (its directory), from `--bigflow-path`.
    Path(PathBuf),
}

/// The `crates/bigflow` directory of the checkout this tool was compiled in.
pub fn tool_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("bigflow")
}

/// Whether `dir` holds the `bigflow` crate (a Cargo.toml whose package is `bigflow`).
fn is_bigflow_crate(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|manifest| {
            manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                == Some("bigflow")
        })
}

/// The directory of the `bigflow` crate the new project depends on, checked.
pub fn resolve_source(source: &BigflowSource) -> Result<PathBuf> {
    match source {
        BigflowSource::ToolCheckout => {
            let dir = tool_checkout();
            if is_bigflow_crate(&dir) {
                dir.canonicalize()
                    .map_err(|e| ToolError::usage(format!("{}: {e}", dir.display())))
            } else {
                Err(ToolError::usage(format!(
                    "this bigflow tool was not built from a checkout that is still there ({} has no bigflow crate), and the bigflow crate is not published to a registry; pass --bigflow-path DIR with DIR the crates/bigflow directory of a bigflow checkout (git clone, then e.g. --bigflow-path bigflow/crates/bigflow)",
                    dir.display()
                )))
            }
        }
        BigflowSource::Path(p) => {
            let abs = p
                .canonicalize()
                .map_err(|e| ToolError::usage(format!("--bigflow-path {}: {e}", p.display())))?;
            if !abs.join("Cargo.toml").is_file() {
                return Err(ToolError::usage(format!(
                    "--bigflow-path {}: no Cargo.toml there; point it at crates/bigflow",
                    abs.display()
                )));
            }
            Ok(abs)
        }
    }
}

/// Rust keywords (strict and reserved, every edition): a crate named so
/// cannot be referred to in code.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Crate names a project cannot take: the standard library's crates, Cargo's
/// test harness, and the crates the project itself depends on.
const TAKEN_CRATE_NAMES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "bigflow",
    "bigflow_core",
];

/// Whether `name` can be a project (Cargo package, Rust crate and Docker
/// image) name; the error says why not and what would do.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64;
    if !ok {
        return Err(ToolError::usage(format!(
            "project name '{name}' is not valid; use lower-case ASCII letters, digits, '-' and '_', starting with a letter, at most 64 characters (e.g. my_project)"
        )));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ToolError::usage(format!(
            "project name '{name}' has upper-case letters, which Docker image names cannot; use '{}'",
            name.to_ascii_lowercase()
        )));
    }
    let krate = name.replace('-', "_");
    if RUST_KEYWORDS.contains(&krate.as_str()) {
        return Err(ToolError::usage(format!(
            "project name '{name}' is a Rust keyword, so the generated code could not name its crate; choose another, e.g. '{krate}_project'"
        )));
    }
    if TAKEN_CRATE_NAMES.contains(&krate.as_str()) {
        return Err(ToolError::usage(format!(
            "project name '{name}' is the name of a crate every project uses ('{krate}'), so the generated code could not build; choose another, e.g. 'my_{krate}'"
        )));
    }
    Ok(())
}

/// A project [`start_project`] wrote.
#[derive(Debug, Clone)]
pub struct Started {
    /// The project's directory.
    pub dir: PathBuf,
    /// The `bigflow` crate it depends on, by path.
    pub bigflow: PathBuf,
}

/// A path as the text of a TOML basic string: backslashes and quotes escaped.
fn toml_text(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Creates the project `name` in `parent/name`.
pub fn start_project(name: &str, parent: &Path, source: &BigflowSource) -> Result<Started> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ToolError::usage(format!(
            "{} already exists and is not empty; choose another name or --path",
            dir.display()
        )));
    }
    let bigflow = resolve_source(source)?;
    let dependency = format!(
        "{{ path = \"{}\", features = [\"spark\", \"beam\"] }}",
        toml_text(&bigflow)
    );
    // The checkout's Spark Connect types build without a system protoc.
    let spark_proto = bigflow.with_file_name("spark-connect-proto");
    let patch = if spark_proto.join("Cargo.toml").is_file() {
        format!(
            "\n# The `spark-connect` feature's generated code, built without a system protoc\n# (the checkout's patched crate).\n[patch.crates-io]\napache-spark-connect-proto = {{ path = \"{}\" }}\n",
            toml_text(&spark_proto)
        )
    } else {
        String::new()
    };
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| ToolError::failed(format!("template syntax: {e}")))?,
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let ctx = context! {
        name => name,
        crate => name.replace('-', "_"),
        bigflow_dependency => dependency,
        spark_proto_patch => patch,
    };
    // Render everything before writing anything.
    let mut rendered = Vec::new();
    for (path, source, templated) in FILES {
        let text = if *templated {
            env.render_str(source, &ctx)
                .map_err(|e| ToolError::failed(format!("template {path}: {e}")))?
        } else {
            source.to_string()
        };
        rendered.push((dir.join(path), text));
    }
    for (path, text) in rendered {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)
                .map_err(|e| ToolError::failed(format!("cannot create {}: {e}", p.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| ToolError::failed(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(Started { dir, bigflow })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_checkout_is_this_workspace_bigflow_crate() {
        let dir = tool_checkout();
        assert!(dir.ends_with("crates/bigflow"), "{}", dir.display());
        assert!(is_bigflow_crate(&dir));
        assert!(!is_bigflow_crate(Path::new(env!("CARGO_MANIFEST_DIR"))));
        assert_eq!(
            resolve_source(&BigflowSource::ToolCheckout).unwrap(),
            dir.canonicalize().unwrap()
        );
    }

    #[test]
    fn a_bigflow_path_without_a_crate_is_a_usage_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_source(&BigflowSource::Path(tmp.path().into())).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("no Cargo.toml there"), "{err}");
    }
}
