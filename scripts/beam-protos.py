"""Extracts Apache Beam's API definitions (Runner API, Fn API, Job API,
provision, artifacts, expansion) as one FileDescriptorSet, from the compiled
descriptors that ship in the apache-beam wheel, so the Rust build needs no
protoc. Run with the Beam venv's Python (scripts/peers.sh installs it):

    ~/.cache/bigflow/peers/apache-beam-2.77.0/bin/python scripts/beam-protos.py

It writes crates/bigflow-beam/proto/beam-<version>.fds.bin. The descriptors are
Apache Beam's interface definitions (Apache License 2.0, see
crates/bigflow-beam/proto/NOTICE); this script and the code generated from
them at build time are ours.
"""

import importlib
import pathlib
import sys

import apache_beam
from google.protobuf import descriptor_pb2, descriptor_pool

MODULES = [
    "org.apache.beam.model.pipeline.v1.beam_runner_api_pb2",
    "org.apache.beam.model.pipeline.v1.endpoints_pb2",
    "org.apache.beam.model.pipeline.v1.external_transforms_pb2",
    "org.apache.beam.model.pipeline.v1.metrics_pb2",
    "org.apache.beam.model.pipeline.v1.schema_pb2",
    "org.apache.beam.model.pipeline.v1.standard_window_fns_pb2",
    "org.apache.beam.model.fn_execution.v1.beam_fn_api_pb2",
    "org.apache.beam.model.fn_execution.v1.beam_provision_api_pb2",
    "org.apache.beam.model.job_management.v1.beam_job_api_pb2",
    "org.apache.beam.model.job_management.v1.beam_artifact_api_pb2",
    "org.apache.beam.model.job_management.v1.beam_expansion_api_pb2",
]


def main() -> None:
    files = []
    for name in MODULES:
        module = importlib.import_module("apache_beam.portability.api." + name)
        files.append(module.DESCRIPTOR)
    # Every file with its imports, each once, dependencies first.
    ordered, seen = [], set()

    def visit(fd):
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        ordered.append(fd)

    for fd in files:
        visit(fd)
    fds = descriptor_pb2.FileDescriptorSet()
    for fd in ordered:
        proto = fds.file.add()
        fd.CopyToProto(proto)
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/bigflow-beam/proto"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"beam-{apache_beam.__version__}.fds.bin"
    path.write_bytes(fds.SerializeToString())
    print(f"{path}: {len(fds.file)} files: " + ", ".join(f.name for f in fds.file))


if __name__ == "__main__":
    sys.exit(main())
