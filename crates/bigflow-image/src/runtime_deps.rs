//! The shared libraries a binary loads, found with `ldd`, so a dynamically
//! linked project binary runs in an image that has nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

/// Absolute paths of the libraries (and the dynamic loader) `binary` needs;
/// empty for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Io {
            what: "run ldd (from libc-bin) to find the binary's shared libraries".into(),
            cause: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(ImageError::Io {
            what: format!("ldd {}", binary.display()),
            cause: all.trim().to_string(),
        });
    }
    parse_ldd(&text)
}

/// Parses `ldd` output: `name => /path (0x…)` and `/path (0x…)` lines.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, ImageError> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("linux-vdso") || line.is_empty() || line.contains("statically linked") {
            continue;
        }
        if line.contains("=> not found") {
            return Err(ImageError::MissingLibrary(
                line.split_whitespace().next().unwrap_or(line).to_string(),
            ));
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(matches!(
            parse_ldd("\tlibfoo.so => not found\n"),
            Err(ImageError::MissingLibrary(_))
        ));
    }
}
