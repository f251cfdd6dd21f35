"""Beam's Python SDK worker behind the container boot contract, for tests of
the fake Dataflow API: what `/opt/apache/beam/boot` does in Beam's Python
container, reduced to what runs here.

    python python_sdk_boot.py --id=ID --logging_endpoint=H:P \
        --artifact_endpoint=H:P --provision_endpoint=H:P --control_endpoint=H:P

Reads the pipeline options from the provision service (as boot does), then
runs `apache_beam.runners.worker.sdk_worker_main` with the environment it
expects. Artifacts are not retrieved: the tests' pipelines have none.
"""

import argparse
import json
import os
import sys

import grpc
from google.protobuf import json_format
from google.protobuf import text_format

from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.portability.api import beam_provision_api_pb2_grpc
from apache_beam.portability.api import endpoints_pb2


def integral(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def main():
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint",
                 "provision_endpoint", "control_endpoint"):
        parser.add_argument("--" + flag, required=True)
    parser.add_argument("--semi_persist_dir", default="/tmp")
    args = parser.parse_args()
    channel = grpc.insecure_channel(args.provision_endpoint)
    info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
        beam_provision_api_pb2.GetProvisionInfoRequest(),
        metadata=[("worker_id", args.id)], timeout=60).info

    def descriptor(url):
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    os.environ["WORKER_ID"] = args.id
    # Like boot's Go JSON encoder, write integral numbers without ".0"
    # (Python's parser rejects "0.0" for an int option).
    options = json_format.MessageToDict(info.pipeline_options)
    os.environ["PIPELINE_OPTIONS"] = json.dumps(integral(options))
    os.environ["CONTROL_API_SERVICE_DESCRIPTOR"] = descriptor(args.control_endpoint)
    os.environ["LOGGING_API_SERVICE_DESCRIPTOR"] = descriptor(args.logging_endpoint)
    os.environ["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persist_dir
    from apache_beam.runners.worker import sdk_worker_main
    sdk_worker_main.main(sys.argv[:1])


if __name__ == "__main__":
    main()
