"""Prints the Dataflow Job JSON that Beam's own Dataflow client would submit
for a serialized Runner API pipeline, offline.

    python beam_reference_job.py PIPELINE.pb [--option=value ...]

Drives `apache_beam.runners.dataflow.dataflow_runner.DataflowRunner` the way
`apache_beam.runners.dataflow.dataflow_job_service` does (`run_pipeline(None,
options, proto)`) in template mode: with `--template_location` Beam writes the
Job it would create instead of sending it. Nothing reaches the network:
`--no_auth` skips credentials, and what Beam would upload to `gs://` (the
pipeline, the template) is kept in memory instead. The default
`dataflow_endpoint` is kept (no request is made) because an endpoint naming
`localhost` makes Beam describe a `local` worker pool instead of `harness`.

Prints one JSON object: {"job": <the Job>, "staged": {gs-url: sha256 hex},
"pipelineSha256": <hex of the pipeline Beam staged>}. Defaults (overridden by
the arguments): project p, region us-central1, job name reference-job, temp
and staging locations under gs://reference-bucket/, sdk_container_image
bigflow:reference.
"""

import hashlib
import json
import logging
import os
import sys
import tempfile

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow import dataflow_runner
from apache_beam.runners.dataflow.internal import apiclient

DEFAULTS = {
    "runner": "DataflowRunner",
    "project": "p",
    "region": "us-central1",
    "job_name": "reference-job",
    "temp_location": "gs://reference-bucket/temp",
    "staging_location": "gs://reference-bucket/staging",
    "sdk_container_image": "bigflow:reference",
}


def main(argv):
    logging.basicConfig(level=logging.WARNING)
    pipeline_path, args = argv[0], argv[1:]
    proto = beam_runner_api_pb2.Pipeline.FromString(open(pipeline_path, "rb").read())
    given = {a[2:].split("=", 1)[0] for a in args if a.startswith("--")}
    flags = ["--%s=%s" % kv for kv in DEFAULTS.items() if kv[0] not in given]
    with tempfile.TemporaryDirectory() as tmp:
        template = os.path.join(tmp, "job.json")
        flags += ["--no_auth", "--template_location=" + template]
        staged = {}
        original = apiclient.DataflowApplicationClient.stage_file

        def stage_file(self, path, name, stream, *rest, **kw):
            if path.startswith("gs://"):
                staged[path.rstrip("/") + "/" + name] = stream.read()
                return
            return original(self, path, name, stream, *rest, **kw)

        apiclient.DataflowApplicationClient.stage_file = stage_file
        options = PipelineOptions(flags + args)
        dataflow_runner.DataflowRunner().run_pipeline(None, options, proto)
        job = json.load(open(template))
    url = job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    print(json.dumps({
        "job": job,
        "staged": {k: hashlib.sha256(v).hexdigest() for k, v in staged.items()},
        "pipelineSha256": hashlib.sha256(staged[url]).hexdigest() if url in staged else None,
    }, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
