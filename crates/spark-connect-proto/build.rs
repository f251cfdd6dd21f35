use std::path::PathBuf;

#[path = "protoc.rs"]
mod protoc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The directory cargo runs this script for (read when it runs, not
    // when it is compiled: one compiled script may serve checkouts at other
    // paths that share a target directory).
    let proto_root = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?,
    )
    .join("proto");
    let connect_dir = proto_root.join("spark").join("connect");

    // The vendored Spark Connect .proto files. Keep in sync with proto/PROTO_VERSION.txt.
    let protos = [
        "base",
        "catalog",
        "commands",
        "common",
        "expressions",
        "ml",
        "ml_common",
        "pipelines",
        "relations",
        "types",
    ]
    .iter()
    .map(|f| connect_dir.join(format!("{f}.proto")))
    .collect::<Vec<_>>();

    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=protoc.rs");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let mut includes = vec![proto_root];
    let mut config = tonic_prost_build::Config::new();
    let choice = protoc::choose(
        std::env::var_os("PROTOC").as_deref(),
        std::env::var_os("PATH").as_deref(),
    );
    match choice {
        protoc::Protoc::FromEnv(p) | protoc::Protoc::OnPath(p) => {
            config.protoc_executable(p);
        }
        protoc::Protoc::Missing(p) => {
            println!(
                "cargo:warning=PROTOC={} does not exist; using the protoc bundled by protoc-bin-vendored",
                p.display()
            );
            config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
            includes.push(protoc_bin_vendored::include_path()?);
        }
        protoc::Protoc::Vendored => {
            config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
            includes.push(protoc_bin_vendored::include_path()?);
        }
    }

    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .bytes(".")
        .compile_with_config(config, &protos, &includes)?;

    Ok(())
}
