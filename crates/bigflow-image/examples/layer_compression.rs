//! Measures layer compression of a large file (a project binary): size and
//! time of a one-file layer per zstd level and for gzip, and whether zstd's
//! output is the same for every worker count.
//!
//! `cargo run --release -p bigflow-image --example layer_compression -- FILE [LEVEL...]`

use std::time::Instant;

use bigflow_image::layer::{Compression, LayerTree, compress_zstd, sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: layer_compression FILE [LEVEL...]");
    let levels: Vec<i32> = args.map(|a| a.parse().expect("a zstd level")).collect();
    let levels = if levels.is_empty() {
        vec![1, 3, 6, 9, 12, 15, 19]
    } else {
        levels
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let data = std::fs::read(&path).expect("read the file");
    let mut tree = LayerTree::default();
    tree.file("/app/bin/app", data, 0o755);
    let tar = tree.to_tar().unwrap();
    println!(
        "{path}: tar {:.1} MB, {workers} workers",
        tar.len() as f64 / 1e6
    );
    println!("| compression | size (MB) | time (s) |");
    println!("|---|---:|---:|");
    let row = |name: &str, f: &dyn Fn() -> Vec<u8>| {
        let start = Instant::now();
        let blob = f();
        let secs = start.elapsed().as_secs_f64();
        println!("| {name} | {:.1} | {secs:.1} |", blob.len() as f64 / 1e6);
        blob
    };
    for &level in &levels {
        row(&format!("zstd {level}"), &|| {
            compress_zstd(&tar, level, workers).unwrap()
        });
    }
    let start = Instant::now();
    let layer = tree.build_with(Compression::Zstd).unwrap();
    println!(
        "| default layer (zstd {}, tar + compression) | {:.1} | {:.1} |",
        bigflow_image::layer::ZSTD_LEVEL,
        layer.blob.len() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    row("gzip 6", &|| Compression::Gzip.compress(&tar).unwrap());
    if std::env::var_os("DETERMINISM").is_some() {
        for &level in &levels {
            let digests: Vec<String> = [1, 2, 3, 8]
                .iter()
                .map(|&w| sha256(&compress_zstd(&tar, level, w).unwrap()))
                .collect();
            println!(
                "zstd {level}: workers 1/2/3/8 identical: {}",
                digests.iter().all(|d| d == &digests[0])
            );
        }
    }
}
