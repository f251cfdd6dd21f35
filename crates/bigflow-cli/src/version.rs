//! Project versions from git tags, and `release` (the next minor tag).
//!
//! On a clean checkout of a tagged commit the version is the tag (a leading
//! `v` dropped). Otherwise it is a snapshot version
//! `<tag>.dev<distance>-g<commit8>` (`0.dev<commits>-g<commit8>` before the
//! first tag), plus `-t<tree8>` when tracked files have uncommitted changes —
//! the hash of the changed tree, so the same edits give the same version.
//! Every version is a valid Docker tag (BigFlow's `+` is not). The `git`
//! command line is used because it is what users have and what CI systems
//! configure (credentials, SSH); a library would bypass both.

use std::path::Path;
use std::process::Command;

use crate::error::{Result, ToolError};

fn git(dir: &Path, args: &[&str]) -> Result<Option<String>> {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Option<String>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| ToolError::failed(format!("could not run git (is it installed?): {e}")))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

pub use bigflow_core::names::is_docker_tag;

fn strip_prefix(tag: &str) -> &str {
    tag.trim_start_matches(|c: char| !c.is_ascii_digit())
}

/// A hash of the working tree's tracked files when they differ from HEAD.
fn dirty_tree(dir: &Path) -> Result<Option<String>> {
    let changes = git(dir, &["status", "--porcelain", "--untracked-files=no"])?.unwrap_or_default();
    if changes.is_empty() {
        return Ok(None);
    }
    let index = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-path", "index"],
    )?
    .ok_or_else(|| ToolError::failed("git rev-parse --git-path index failed"))?;
    let tmp = std::env::temp_dir().join(format!("bigflow-index-{}", std::process::id()));
    std::fs::copy(&index, &tmp)
        .map_err(|e| ToolError::failed(format!("cannot copy the git index: {e}")))?;
    let tmp_str = tmp.to_string_lossy().to_string();
    let env = [("GIT_INDEX_FILE", tmp_str.as_str())];
    let added = git_env(dir, &["add", "-u"], &env);
    let tree = match added {
        Ok(Some(_)) => git_env(dir, &["write-tree"], &env),
        other => other,
    };
    let _ = std::fs::remove_file(&tmp);
    let tree = tree?.ok_or_else(|| {
        ToolError::failed("hashing the changed working tree failed (git add -u / write-tree)")
    })?;
    Ok(Some(tree.chars().take(8).collect()))
}

/// The project version of the git checkout at `dir`.
pub fn project_version(dir: &Path) -> Result<String> {
    if git(dir, &["rev-parse", "--is-inside-work-tree"])?.as_deref() != Some("true") {
        return Err(ToolError::usage(format!(
            "{} is not inside a git repository; versions come from git tags (run `git init` and commit)",
            dir.display()
        )));
    }
    let head = git(dir, &["rev-parse", "HEAD"])?.ok_or_else(|| {
        ToolError::usage(
            "the git repository has no commits yet; commit first, versions come from git",
        )
    })?;
    let dirty = dirty_tree(dir)?;
    let version = match (
        &dirty,
        git(dir, &["describe", "--tags", "--exact-match", "HEAD"])?,
    ) {
        (None, Some(tag)) => strip_prefix(&tag).to_string(),
        _ => match git(dir, &["describe", "--tags", "--long", "--abbrev=8", "HEAD"])? {
            Some(described) => {
                // <tag>-<distance>-g<hash>; the tag itself may contain '-'.
                let mut parts = described.rsplitn(3, '-');
                let hash = parts.next().unwrap_or_default();
                let distance = parts.next().unwrap_or("0");
                let tag = parts.next().unwrap_or(&described);
                format!("{}.dev{distance}-{hash}", strip_prefix(tag))
            }
            None => {
                let count =
                    git(dir, &["rev-list", "--count", "HEAD"])?.unwrap_or_else(|| "0".into());
                format!("0.dev{count}-g{}", &head[..8.min(head.len())])
            }
        },
    };
    let version = match dirty {
        Some(tree) => format!("{version}-t{tree}"),
        None => version,
    };
    if !is_docker_tag(&version) {
        return Err(ToolError::usage(format!(
            "version '{version}' (from the git tags) is not a valid Docker tag; use tags of letters, digits, '.', '_' and '-' such as 1.2"
        )));
    }
    Ok(version)
}

/// The HEAD commit's hash and commit time (Unix seconds).
pub fn head_commit(dir: &Path) -> Result<(String, i64)> {
    let line = git(dir, &["log", "-1", "--format=%H %ct", "HEAD"])?
        .ok_or_else(|| ToolError::usage("the git repository has no commits yet; commit first, images are labelled with the commit"))?;
    let (hash, time) = line.split_once(' ').unwrap_or((&line, "0"));
    Ok((hash.to_string(), time.parse().unwrap_or(0)))
}

/// The tag after `latest`: the minor version bumped, patch dropped (`1.11.3` → `1.12`).
pub fn next_minor(latest: &str) -> Result<String> {
    let digits_at = latest
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(latest.len());
    let (prefix, rest) = latest.split_at(digits_at);
    let mut numbers = rest.split('.');
    let parse = |s: Option<&str>| -> Result<u64> {
        match s {
            None => Ok(0),
            Some(s) => {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().map_err(|e: std::num::ParseIntError| {
                    let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                        format!("{digits} is too large a version number")
                    } else {
                        "expected MAJOR.MINOR[.PATCH], optionally prefixed like v1.2".into()
                    };
                    ToolError::usage(format!("cannot bump tag '{latest}': {why}"))
                })
            }
        }
    };
    let major = parse(numbers.next())?;
    let minor = parse(numbers.next())?;
    let next = minor.checked_add(1).ok_or_else(|| {
        ToolError::usage(format!(
            "cannot bump tag '{latest}': its minor version {minor} is the largest there is; tag a new major version by hand (e.g. git tag {prefix}{}.0)",
            major.saturating_add(1)
        ))
    })?;
    Ok(format!("{prefix}{major}.{next}"))
}

/// Tags HEAD with the next minor version and pushes the tag to `origin` (when
/// there is one). Returns the new tag.
pub fn release(dir: &Path, ssh_identity_file: Option<&Path>) -> Result<String> {
    project_version(dir)?;
    let tags =
        git(dir, &["tag", "--sort=version:refname", "--merged", "HEAD"])?.unwrap_or_default();
    let latest = tags.lines().last().unwrap_or("0.0");
    let next = next_minor(latest)?;
    if git(dir, &["tag", &next])?.is_none() {
        return Err(ToolError::failed(format!(
            "git tag {next} failed; does the tag already exist?"
        )));
    }
    let remotes = git(dir, &["remote"])?.unwrap_or_default();
    if !remotes.lines().any(|r| r == "origin") {
        eprintln!("warning: no 'origin' remote; tag {next} was created locally only");
        return Ok(next);
    }
    let ssh = ssh_identity_file.map(|f| format!("ssh -i {} -o IdentitiesOnly=yes", f.display()));
    let env: Vec<(&str, &str)> = ssh
        .as_deref()
        .map(|s| ("GIT_SSH_COMMAND", s))
        .into_iter()
        .collect();
    if git_env(dir, &["push", "origin", &next], &env)?.is_none() {
        return Err(ToolError::failed(format!(
            "tag {next} was created but `git push origin {next}` failed; fix access to origin and push the tag by hand"
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_like_bigflow() {
        assert_eq!(next_minor("0.0").unwrap(), "0.1");
        assert_eq!(next_minor("1.11.3").unwrap(), "1.12");
        assert_eq!(next_minor("v2").unwrap(), "v2.1");
        assert!(next_minor("release").is_err());
    }

    #[test]
    fn refuses_a_tag_it_cannot_increment() {
        let e = next_minor("1.18446744073709551615").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("is the largest there is"), "{e}");
        let e = next_minor("1.99999999999999999999999").unwrap_err();
        assert!(e.to_string().contains("too large a version number"), "{e}");
    }
}
