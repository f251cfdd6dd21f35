//! With the `portable` feature, generates Beam's portability API (messages and
//! gRPC stubs) from the descriptor set in `proto/`, extracted from the
//! apache-beam wheel by `scripts/beam-protos.py`: no `protoc` is needed.

fn main() {
    #[cfg(feature = "portable")]
    portable::generate();
}

#[cfg(feature = "portable")]
mod portable {
    use prost::Message;

    /// The Beam release whose API the descriptors describe.
    const DESCRIPTORS: &str = "proto/beam-2.77.0.fds.bin";

    pub fn generate() {
        println!("cargo:rerun-if-changed={DESCRIPTORS}");
        let bytes =
            std::fs::read(DESCRIPTORS).unwrap_or_else(|e| panic!("cannot read {DESCRIPTORS}: {e}"));
        let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("{DESCRIPTORS} is not a FileDescriptorSet: {e}"));
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)
            .unwrap_or_else(|e| panic!("generating Beam's API from {DESCRIPTORS}: {e}"));
    }
}
