"""A strict fake of the Dataflow REST API (v1b3) on loopback, for tests.

    python fake_dataflow.py --port P --storage-endpoint http://127.0.0.1:GCS \
        [--beam-job-endpoint localhost:J] [--worker-binary BIN] [--log-dir D]

Run with the `dataflow-fake` venv of scripts/peers.sh (apache-beam[gcp],
google-api-python-client, google-cloud-dataflow-client).

Strict: every request is checked against the `dataflow.v1b3` discovery
document shipped in google-api-python-client (route, query parameters, body
schema: field names, types, enums) and the body is parsed with
google-cloud-dataflow-client's `Job` message (`json_format.Parse(...,
ignore_unknown_fields=False)`); errors answer Google's error shape. A create
must be a portable Runner v2 batch submission (see `check_portable_shape`);
the pipeline at `pipelineUrl` is read from the Cloud Storage emulator and its
sha256 must equal `pipelineProtoHash`. Every request needs `Authorization:
Bearer <anything>`.

Executing: each job's Runner API pipeline runs on Beam's job service
(`--beam-job-endpoint`, Beam's portable Job API). DOCKER environments (the
project's image, which cannot run here) are replaced by EXTERNAL ones pointing
at a worker pool started for the job (`python -m
apache_beam.runners.worker.worker_pool_main --container_executable=BIN`), so
the worker binary runs with the container boot flags, with
STORAGE_EMULATOR_HOST set to the storage emulator. Other environments are left
alone. States: JOB_STATE_PENDING -> JOB_STATE_RUNNING -> JOB_STATE_DONE /
JOB_STATE_FAILED, or JOB_STATE_CANCELLING -> JOB_STATE_CANCELLED.

Test side endpoints (no auth): `POST /__fake/faults` (queue faults),
`GET /__fake/faults`, `DELETE /__fake/faults`, `GET /__fake/jobs`,
`GET /__fake/requests`, `GET /__fake/health`. See README.md beside this file.
"""

import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import googleapiclient
import grpc
from google.cloud import dataflow_v1beta3
from google.protobuf import json_format
from google.protobuf import struct_pb2

from apache_beam.metrics import monitoring_infos
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_artifact_api_pb2_grpc
from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.portability.api import beam_job_api_pb2_grpc
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.portability.api import endpoints_pb2
from apache_beam.runners.portability import artifact_service

DISCOVERY_PATH = os.path.join(
    os.path.dirname(googleapiclient.__file__),
    "discovery_cache", "documents", "dataflow.v1b3.json")
DISCOVERY = json.load(open(DISCOVERY_PATH))
SCHEMAS = DISCOVERY["schemas"]
STANDARD_PARAMS = DISCOVERY["parameters"]

# The protobuf messages behind the discovery schemas a request carries.
PROTO_OF_SCHEMA = {"Job": dataflow_v1beta3.Job.meta.pb}

TERMINAL = {
    "JOB_STATE_DONE", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
    "JOB_STATE_UPDATED", "JOB_STATE_DRAINED", "JOB_STATE_STOPPED",
}
IMPORTANCE = [
    "JOB_MESSAGE_IMPORTANCE_UNKNOWN", "JOB_MESSAGE_DEBUG",
    "JOB_MESSAGE_DETAILED", "JOB_MESSAGE_BASIC", "JOB_MESSAGE_WARNING",
    "JOB_MESSAGE_ERROR",
]
REQUIRED_EXPERIMENTS = ["use_runner_v2", "use_portable_job_submission"]
JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DATETIME = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
FAULTS = {
    "create", "get", "update", "list", "messages", "metrics",
}
HTTP_FAULTS = {"429", "500", "503", "drop", "drop_before"}
RUN_FAULTS = {"fail", "hang", "ok"}

ARGS = None
LOCK = threading.RLock()
JOBS = {}  # id -> Job
REQUESTS = []  # every request received, in order
QUEUED_FAULTS = {}  # kind -> [fault]


def log(*parts):
    print("fake-dataflow:", *parts, file=sys.stderr, flush=True)


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def camel(name):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


class ApiError(Exception):
    """An answer in Google's error shape."""

    STATUS = {
        400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
        409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
        501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
    }

    def __init__(self, code, message, status=None, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or self.STATUS.get(code, "UNKNOWN")
        self.details = details
        self.headers = headers or {}

    def body(self):
        error = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(violations):
    """400 INVALID_ARGUMENT listing (field, description) violations."""
    return ApiError(
        400, "\n".join(d for _, d in violations),
        details=[{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {"field": f, "description": d} for f, d in violations],
        }])


def failed_precondition(message):
    return ApiError(400, message, status="FAILED_PRECONDITION")


def op_id():
    return "%016x" % random.getrandbits(64)


# ---------------------------------------------------------------------------
# Validation against the discovery document.

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_string(value):
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None


def _show(value):
    return json.dumps(value)[:200]


def validate(value, schema, path, errors, type_name=None):
    """Appends (field, description) for what Google's JSON parser would reject."""
    if "$ref" in schema:
        type_name = schema["$ref"]
        schema = SCHEMAS[type_name]
    if value is None:  # proto3 JSON: null is the default value
        return
    kind = schema.get("type")
    fmt = schema.get("format")

    def invalid(proto_type):
        errors.append((path, "Invalid value at '%s' (%s), %s" % (
            path, proto_type, _show(value))))

    if kind == "object":
        if not isinstance(value, dict):
            return invalid(type_name or "TYPE_MESSAGE")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is not None:
            for key, item in value.items():
                validate(item, extra, "%s[%s]" % (path, key), errors)
            return
        props = props or {}
        for key, item in value.items():
            name = key if key in props else camel(key)
            if name not in props or (name != key and snake(name) != key):
                errors.append((path, (
                    "Invalid JSON payload received. Unknown name %s at '%s': "
                    "Cannot find field.") % (json.dumps(key), path)))
                continue
            validate(item, props[name], "%s.%s" % (path, snake(name)), errors)
    elif kind == "array":
        if not isinstance(value, list):
            return invalid("TYPE_REPEATED")
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), "%s[%d]" % (path, i), errors)
    elif kind == "string":
        if fmt in ("int64", "uint64"):
            if not (_is_int(value) or _int_string(value)):
                return invalid("TYPE_INT64" if fmt == "int64" else "TYPE_UINT64")
            if fmt == "uint64" and int(value) < 0:
                return invalid("TYPE_UINT64")
            return
        if "enum" in schema:
            if _is_int(value):  # proto3 JSON accepts enum numbers
                return
            if not isinstance(value, str) or value not in schema["enum"]:
                return invalid("TYPE_ENUM")
            return
        if not isinstance(value, str):
            return invalid("TYPE_STRING")
        if fmt == "google-datetime" and not DATETIME.match(value):
            return invalid("google.protobuf.Timestamp")
        if fmt == "google-duration" and not re.fullmatch(
                r"-?\d+(\.\d{1,9})?s", value):
            return invalid("google.protobuf.Duration")
        if fmt == "byte":
            try:
                padded = value + "=" * (-len(value) % 4)
                base64.b64decode(padded.replace("-", "+").replace("_", "/"),
                                 validate=True)
            except Exception:
                return invalid("TYPE_BYTES")
    elif kind == "integer":
        if not (_is_int(value) or _int_string(value)):
            return invalid("TYPE_INT32" if fmt != "uint32" else "TYPE_UINT32")
        low, high = (0, 2**32 - 1) if fmt == "uint32" else (-2**31, 2**31 - 1)
        if not low <= int(value) <= high:
            return invalid("TYPE_INT32" if fmt != "uint32" else "TYPE_UINT32")
    elif kind == "number":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and (
                value in ("NaN", "Infinity", "-Infinity")
                or re.fullmatch(r"-?\d+(\.\d*)?([eE][-+]?\d+)?", value)))
        if not ok:
            return invalid("TYPE_DOUBLE")
    elif kind == "boolean":
        if not isinstance(value, bool):
            return invalid("TYPE_BOOL")
    elif kind == "any":
        return
    else:
        raise AssertionError("schema without a type at %s: %r" % (path, schema))


def parse_body(raw, schema_name, root):
    """The request body as JSON, validated and strictly parsed, or ApiError."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad_request([(root, "Invalid JSON payload received. %s" % e)])
    errors = []
    validate(body, {"$ref": schema_name}, root, errors)
    if errors:
        raise bad_request(errors)
    message = PROTO_OF_SCHEMA[schema_name]()
    try:
        json_format.Parse(text, message, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise bad_request([(root, "Invalid JSON payload received. %s" % e)])
    return body, message


def check_response(value, schema_name):
    """The fake's own answers must fit the schema too."""
    errors = []
    validate(value, {"$ref": schema_name}, "response", errors)
    if errors:
        raise ApiError(500, "fake Dataflow bug: its %s answer breaks the schema: %s"
                       % (schema_name, errors))
    return value


# ---------------------------------------------------------------------------
# Routes, from the discovery document.

def _methods(resource, out):
    for method in resource.get("methods", {}).values():
        out.append(method)
    for sub in resource.get("resources", {}).values():
        _methods(sub, out)
    return out


def _route(method):
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)",
                     re.escape(method["flatPath"]).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile("^/" + pattern + "$"), method


ROUTES = sorted(
    (_route(m) for m in _methods(DISCOVERY, [])),
    key=lambda r: r[1]["flatPath"].count("{"))


def find_route(http_method, path):
    allowed = False
    for regex, method in ROUTES:
        match = regex.match(path)
        if match:
            if method["httpMethod"] == http_method:
                return method, {k: urllib.parse.unquote(v)
                                for k, v in match.groupdict().items()}
            allowed = True
    raise ApiError(404, "Method not found: %s %s%s" % (
        http_method, path, " (the path exists for another HTTP method)" if allowed else ""))


def check_query(method, query):
    """Rejects query parameters the method does not declare, like Google."""
    params = dict(STANDARD_PARAMS)
    params.update({k: v for k, v in method.get("parameters", {}).items()
                   if v.get("location") == "query"})
    violations = []
    for key, values in query.items():
        if key not in params:
            violations.append((key, (
                "Invalid JSON payload received. Unknown name %s: Cannot bind "
                "query parameter. Field %s could not be found in request message.")
                % (json.dumps(key), json.dumps(key))))
            continue
        for value in values:
            errors = []
            spec = dict(params[key])
            if spec.get("type") == "integer":
                if not _int_string(value):
                    errors.append((key, "Invalid value at '%s' (TYPE_INT32), %s"
                                   % (key, json.dumps(value))))
            elif spec.get("type") == "boolean":
                if value not in ("true", "false"):
                    errors.append((key, "Invalid value at '%s' (TYPE_BOOL), %s"
                                   % (key, json.dumps(value))))
            else:
                validate(value, {k: v for k, v in spec.items()
                                 if k in ("type", "enum", "format")}, key, errors)
            violations.extend(errors)
    if violations:
        raise bad_request(violations)
    if query.get("alt", ["json"])[-1] != "json":
        raise bad_request([("alt", "fake Dataflow answers JSON only (alt=json)")])


# ---------------------------------------------------------------------------
# Jobs.

class Job:
    def __init__(self, project, location, body, message, pipeline, pipeline_url):
        self.id = "%s-%019d" % (
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H_%M_%S"),
            random.getrandbits(62))
        self.project = project
        self.location = location
        self.body = body
        self.message = message
        self.name = message.name
        self.pipeline = pipeline
        self.pipeline_url = pipeline_url
        self.create_time = now_rfc3339()
        self.start_time = self.create_time
        self.state = "JOB_STATE_PENDING"
        self.state_time = self.create_time
        self.requested_state = None
        self.messages = []
        self.metrics = []
        self.beam_job_id = None
        self.pool = None
        self.pool_log = None
        self.run_fault = None
        self.cancel_requested = threading.Event()
        self.thread = None

    def set_state(self, state):
        with LOCK:
            if self.state in TERMINAL or self.state == state:
                return False
            log("job", self.id, self.state, "->", state)
            self.state = state
            self.state_time = now_rfc3339()
            self.add_message("JOB_MESSAGE_BASIC", "Job state: %s" % state)
            return True

    def add_message(self, importance, text):
        with LOCK:
            self.messages.append({
                "id": str(len(self.messages) + 1),
                "time": now_rfc3339(),
                "messageText": text,
                "messageImportance": importance,
            })

    def view(self, view="JOB_VIEW_ALL"):
        with LOCK:
            full = json_format.MessageToDict(self.message)
            out = {
                "id": self.id,
                "projectId": self.project,
                "name": self.name,
                "type": full.get("type", "JOB_TYPE_BATCH"),
                "currentState": self.state,
                "currentStateTime": self.state_time,
                "createTime": self.create_time,
                "startTime": self.start_time,
                "location": self.location,
            }
            for key in ("clientRequestId", "labels"):
                if key in full:
                    out[key] = full[key]
            if self.requested_state:
                out["requestedState"] = self.requested_state
            if view in ("JOB_VIEW_ALL", "JOB_VIEW_DESCRIPTION"):
                for key, value in full.items():
                    if key not in out and key not in ("currentState",
                                                      "currentStateTime"):
                        out[key] = value
            return out


def job_of(params):
    with LOCK:
        job = JOBS.get(params["jobId"])
    if (job is None or job.project != params["projectId"]
            or job.location != params["location"]):
        raise ApiError(404, (
            "(%s): Information about job %s could not be found in our system. "
            "Please double check that the API being used is "
            "projects.locations.jobs.get. If the API being used is "
            "projects.locations.jobs.get, please double check the id is correct.")
            % (op_id(), params["jobId"]))
    return job


def gcs_location(url, what):
    """(bucket, object) of gs://B/O, storage.googleapis.com/B/O or B.storage.googleapis.com/O."""
    for pattern in (r"^gs://([^/]+)/?(.*)$",
                    r"^(?:https?://)?storage\.googleapis\.com/([^/]+)/?(.*)$",
                    r"^(?:https?://)?([^/]+)\.storage\.googleapis\.com/?(.*)$"):
        match = re.match(pattern, url)
        if match:
            return match.group(1), match.group(2)
    raise failed_precondition(
        "fake Dataflow: %s %s is not a Cloud Storage location (gs://bucket/object, "
        "storage.googleapis.com/bucket/object)" % (what, json.dumps(url)))


def storage_get(path):
    url = ARGS.storage_endpoint.rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_portable_shape(message):
    """The submission must be what Runner v2 portable job submission sends."""
    problems = []
    job = json_format.MessageToDict(message)
    env = job.get("environment", {})
    if not JOB_NAME.match(message.name or ""):
        problems.append(
            "job name %s must match [a-z]([-a-z0-9]*[a-z0-9])? (Dataflow's rule)"
            % json.dumps(message.name))
    if len(message.name) > 1024:
        problems.append("job name longer than 1024 characters")
    if job.get("type") != "JOB_TYPE_BATCH":
        problems.append("type must be JOB_TYPE_BATCH, got %s" % json.dumps(job.get("type")))
    experiments = env.get("experiments", [])
    for experiment in REQUIRED_EXPERIMENTS:
        if experiment not in experiments:
            problems.append("environment.experiments lacks %s" % experiment)
    if job.get("steps"):
        problems.append("steps must be empty: a portable submission's graph is at pipelineUrl")
    options = env.get("sdkPipelineOptions", {}).get("options")
    if not isinstance(options, dict):
        problems.append("environment.sdkPipelineOptions.options is missing")
        options = {}
    if not isinstance(options.get("pipelineUrl"), str) or not options.get("pipelineUrl"):
        problems.append("sdkPipelineOptions.options.pipelineUrl is missing")
    proto_hash = options.get("pipelineProtoHash")
    if not isinstance(proto_hash, str) or not re.fullmatch(r"[0-9a-f]{64}", proto_hash):
        problems.append(
            "sdkPipelineOptions.options.pipelineProtoHash must be a sha256 in "
            "lowercase hex, got %s" % json.dumps(proto_hash))
    if not env.get("tempStoragePrefix"):
        problems.append("environment.tempStoragePrefix is missing")
    pools = env.get("workerPools", [])
    if len(pools) != 1:
        problems.append("exactly one worker pool expected, got %d" % len(pools))
    else:
        pool = pools[0]
        if pool.get("kind") != "harness":
            problems.append('workerPools[0].kind must be "harness", got %s'
                            % json.dumps(pool.get("kind")))
        images = pool.get("sdkHarnessContainerImages", [])
        if not images or not images[0].get("containerImage"):
            problems.append("workerPools[0].sdkHarnessContainerImages[0].containerImage is missing")
    if problems:
        raise failed_precondition(
            "fake Dataflow: not a portable Runner v2 batch submission: "
            + "; ".join(problems))
    if env["tempStoragePrefix"]:
        gcs_location(env["tempStoragePrefix"], "environment.tempStoragePrefix")
    return options, pools[0]


def check_environments(pipeline, pool):
    """Every DOCKER environment a transform uses has its container in the pool."""
    images = pool.get("sdkHarnessContainerImages", [])
    used = {t.environment_id for t in pipeline.components.transforms.values()
            if t.environment_id}
    problems = []
    for env_id in sorted(used):
        env = pipeline.components.environments.get(env_id)
        if env is None:
            problems.append("transforms use environment %s, which the pipeline lacks" % env_id)
            continue
        if env.urn != common_urns.environments.DOCKER.urn:
            continue
        image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
        named = [i for i in images if i.get("environmentId") == env_id]
        if not named and len(images) == 1 and not images[0].get("environmentId"):
            named = images
        if not named:
            problems.append(
                "no sdkHarnessContainerImages entry for environment %s" % env_id)
        elif named[0].get("containerImage") != image:
            problems.append(
                "environment %s runs %s but its sdkHarnessContainerImages entry says %s"
                % (env_id, image, named[0].get("containerImage")))
    for image in images:
        env_id = image.get("environmentId")
        if env_id and env_id not in pipeline.components.environments:
            problems.append("sdkHarnessContainerImages names environment %s, which "
                            "the pipeline lacks" % env_id)
    if problems:
        raise failed_precondition("fake Dataflow: " + "; ".join(problems))


def create_job(params, raw, query):
    body, message = parse_body(raw, "Job", "job")
    options, pool = check_portable_shape(message)
    with LOCK:
        for other in JOBS.values():
            same_place = (other.name == message.name
                          and other.project == params["projectId"]
                          and other.location == params["location"])
            # Dataflow's idempotency: a create with the clientRequestId of a
            # job it knows fails, whatever that job's state (Job.clientRequestId).
            if (same_place and message.client_request_id
                    and other.message.client_request_id == message.client_request_id):
                raise ApiError(409, (
                    "(%s): The workflow could not be created. Causes: (%s): A job "
                    "named %s with client request id %s exists already: %s.")
                    % (op_id(), op_id(), other.name, message.client_request_id, other.id))
            if same_place and other.state not in TERMINAL:
                raise ApiError(409, (
                    "(%s): The workflow could not be created. Causes: (%s): There "
                    "is already an active job named %s with id: %s. If you want "
                    "to submit a second job, try again by setting a different name.")
                    % (op_id(), op_id(), other.name, other.id))
    url = options["pipelineUrl"]
    bucket, name = gcs_location(url, "pipelineUrl")
    status, data = storage_get("/storage/v1/b/%s/o/%s?alt=media" % (
        urllib.parse.quote(bucket, safe=""), urllib.parse.quote(name, safe="")))
    if status != 200:
        raise failed_precondition(
            "fake Dataflow: cannot read pipelineUrl %s from the storage emulator: "
            "HTTP %d %s" % (url, status, data[:300].decode("utf-8", "replace")))
    digest = hashlib.sha256(data).hexdigest()
    if digest != options["pipelineProtoHash"]:
        raise bad_request([("job.environment.sdk_pipeline_options", (
            "fake Dataflow: pipelineProtoHash %s does not match the sha256 of %s "
            "(%d bytes): %s") % (options["pipelineProtoHash"], url, len(data), digest))])
    try:
        pipeline = beam_runner_api_pb2.Pipeline.FromString(data)
    except Exception as e:
        raise failed_precondition(
            "fake Dataflow: %s is not a Runner API Pipeline: %s" % (url, e))
    check_environments(pipeline, pool)
    job = Job(params["projectId"], params["location"], body, message, pipeline, url)
    with LOCK:
        JOBS[job.id] = job
        job.run_fault = next_fault("run")
    job.thread = threading.Thread(target=run_job, args=(job,), daemon=True)
    job.thread.start()
    return check_response(job.view("JOB_VIEW_ALL"), "Job")


def get_job(params, raw, query):
    view = query.get("view", ["JOB_VIEW_SUMMARY"])[-1]
    return check_response(job_of(params).view(view), "Job")


def list_jobs(params, raw, query):
    flt = query.get("filter", ["ALL"])[-1]
    name = query.get("name", [None])[-1]
    view = query.get("view", ["JOB_VIEW_SUMMARY"])[-1]
    with LOCK:
        jobs = [j for j in JOBS.values()
                if j.project == params["projectId"] and j.location == params["location"]
                and (name is None or j.name == name)
                and (flt != "ACTIVE" or j.state not in TERMINAL)
                and (flt != "TERMINATED" or j.state in TERMINAL)]
    jobs.sort(key=lambda j: (j.state in TERMINAL, j.create_time), reverse=False)
    answer = {}
    if jobs:
        answer["jobs"] = [j.view(view) for j in jobs]
    return check_response(answer, "ListJobsResponse")


def update_job(params, raw, query):
    body, message = parse_body(raw, "Job", "job")
    job = job_of(params)
    requested = json_format.MessageToDict(message).get("requestedState")
    if requested is None:
        raise failed_precondition(
            "fake Dataflow: an update must set requestedState (only "
            "JOB_STATE_CANCELLED is supported)")
    if requested != "JOB_STATE_CANCELLED":
        raise failed_precondition(
            "(%s): Workflow modification failed. Causes: (%s): fake Dataflow "
            "supports only requestedState JOB_STATE_CANCELLED for a batch job, got %s"
            % (op_id(), op_id(), requested))
    with LOCK:
        if job.state in TERMINAL:
            raise failed_precondition(
                "(%s): Workflow modification failed. Causes: (%s): Cannot perform "
                "operation 'cancel' on Job: %s. Job has terminated in state %s."
                % (op_id(), op_id(), job.id, job.state))
        first = job.requested_state is None
        job.requested_state = "JOB_STATE_CANCELLED"
        job.set_state("JOB_STATE_CANCELLING")
    if first:
        threading.Thread(target=cancel_job, args=(job,), daemon=True).start()
    return check_response(job.view("JOB_VIEW_SUMMARY"), "Job")


def list_messages(params, raw, query):
    job = job_of(params)
    minimum = query.get("minimumImportance", ["JOB_MESSAGE_IMPORTANCE_UNKNOWN"])[-1]
    size = int(query.get("pageSize", ["50"])[-1]) or 50
    start = int(query.get("pageToken", ["0"])[-1] or 0)
    with LOCK:
        chosen = [m for m in job.messages
                  if IMPORTANCE.index(m["messageImportance"]) >= IMPORTANCE.index(minimum)]
    answer = {}
    page = chosen[start:start + size]
    if page:
        answer["jobMessages"] = page
    if start + size < len(chosen):
        answer["nextPageToken"] = str(start + size)
    return check_response(answer, "ListJobMessagesResponse")


def get_metrics(params, raw, query):
    job = job_of(params)
    with LOCK:
        answer = {"metricTime": now_rfc3339()}
        if job.metrics:
            answer["metrics"] = list(job.metrics)
    return check_response(answer, "JobMetrics")


HANDLERS = {
    "dataflow.projects.locations.jobs.create": create_job,
    "dataflow.projects.locations.jobs.get": get_job,
    "dataflow.projects.locations.jobs.list": list_jobs,
    "dataflow.projects.locations.jobs.update": update_job,
    "dataflow.projects.locations.jobs.messages.list": list_messages,
    "dataflow.projects.locations.jobs.getMetrics": get_metrics,
}
FAULT_KIND = {
    "dataflow.projects.locations.jobs.create": "create",
    "dataflow.projects.locations.jobs.get": "get",
    "dataflow.projects.locations.jobs.list": "list",
    "dataflow.projects.locations.jobs.update": "update",
    "dataflow.projects.locations.jobs.messages.list": "messages",
    "dataflow.projects.locations.jobs.getMetrics": "metrics",
}


def next_fault(kind):
    with LOCK:
        queue = QUEUED_FAULTS.get(kind) or []
        return queue.pop(0) if queue else None


# ---------------------------------------------------------------------------
# Execution on Beam's job service.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker_pool(job):
    """A worker pool for one job, in its own process group (killed as a whole)."""
    if not ARGS.worker_binary:
        raise RuntimeError(
            "fake Dataflow was started without --worker-binary: it cannot run the "
            "job's DOCKER environments")
    for _ in range(3):
        port = free_port()
        job.pool_log = os.path.join(ARGS.log_dir, "worker-pool-%s.log" % job.id)
        env = dict(os.environ)
        env["STORAGE_EMULATOR_HOST"] = ARGS.storage_endpoint
        with open(job.pool_log, "ab") as out:
            job.pool = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 "--service_port=%d" % port,
                 "--container_executable=%s" % ARGS.worker_binary],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and job.pool.poll() is None:
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                threading.Thread(target=watch_workers, args=(job, job.pool),
                                 daemon=True).start()
                return "localhost:%d" % port
            except OSError:
                time.sleep(0.1)
        stop_worker_pool(job)
    raise RuntimeError("the worker pool did not start; see %s" % job.pool_log)


def stop_worker_pool(job):
    with LOCK:
        pool, job.pool = job.pool, None
    if pool is None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(pool.pid, sig)
        except ProcessLookupError:
            break
        try:
            pool.wait(timeout=wait)
            # The workers share the group: make sure none is left behind.
            try:
                os.killpg(pool.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        except subprocess.TimeoutExpired:
            continue


def children(pid):
    """(all, live): the processes whose parent is pid; live leaves zombies out."""
    found, live = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
            if fields[0] not in ("Z", "X"):
                live.append(int(entry))
    return found, live


def log_tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


def watch_workers(job, pool):
    """Fails the job when its SDK workers are gone while it still runs: Beam's
    runner would wait for them forever; Dataflow fails such a job."""
    seen = False
    gone_since = None
    while True:
        time.sleep(0.5)
        with LOCK:
            if job.state in TERMINAL or job.pool is not pool or job.cancel_requested.is_set():
                return
        alive = pool.poll() is None
        started, live = children(pool.pid) if alive else ([], [])
        seen = seen or bool(started)
        if live:
            gone_since = None
            continue
        if alive and not seen:
            continue
        gone_since = gone_since or time.time()
        if time.time() - gone_since < ARGS.worker_grace_seconds:
            continue
        with LOCK:
            if job.state in TERMINAL or job.cancel_requested.is_set():
                return
        what = "the worker pool exited" if not alive else "the SDK worker exited"
        job.add_message("JOB_MESSAGE_ERROR", (
            "Error message from worker: %s while the job was running (fake "
            "Dataflow). Last lines of the worker pool's log (%s):\n%s")
            % (what, job.pool_log, log_tail(job.pool_log)))
        job.add_message("JOB_MESSAGE_ERROR", "Workflow failed.")
        job.set_state("JOB_STATE_FAILED")
        cancel_beam(job)
        stop_worker_pool(job)
        return


def externalize(pipeline, job):
    """DOCKER environments -> EXTERNAL ones served by the job's worker pool."""
    docker = [e for e in pipeline.components.environments.values()
              if e.urn == common_urns.environments.DOCKER.urn]
    if not docker:
        return
    url = start_worker_pool(job)
    for env in docker:
        image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
        env.urn = common_urns.environments.EXTERNAL.urn
        env.payload = beam_runner_api_pb2.ExternalPayload(
            endpoint=endpoints_pb2.ApiServiceDescriptor(url=url),
            params={"fake_dataflow_image": image}).SerializeToString()
    job.add_message("JOB_MESSAGE_DETAILED",
                    "Worker pool started at %s for %s" % (url, ARGS.worker_binary))


def beam_options(options):
    """The job's sdkPipelineOptions.options as the Job API's options, values
    unchanged (a worker sees them as Dataflow would pass them)."""
    struct = struct_pb2.Struct()
    struct.update({"beam:option:%s:v1" % k: v for k, v in options.items()
                   if v is not None})
    return struct


BEAM_STATE = beam_job_api_pb2.JobState


def metric_updates(response):
    """Beam's user metrics as Dataflow MetricUpdates (committed and tentative)."""
    updates = []
    seen = set()
    infos = list(response.metrics.committed) + list(response.metrics.attempted)
    for info in infos:
        if not monitoring_infos.is_user_monitoring_info(info):
            continue
        labels = info.labels
        step = labels.get(monitoring_infos.PTRANSFORM_LABEL, "")
        key = (step, labels.get(monitoring_infos.NAMESPACE_LABEL),
               labels.get(monitoring_infos.NAME_LABEL))
        if key in seen:
            continue
        seen.add(key)
        if monitoring_infos.is_counter(info):
            value = {"scalar": monitoring_infos.extract_counter_value(info)}
        elif monitoring_infos.is_distribution(info):
            count, total, low, high = monitoring_infos.extract_distribution(info)
            value = {"distribution": {"count": count, "sum": total, "min": low,
                                      "max": high}}
        else:
            continue
        for tentative in (False, True):
            context = {"step": step, "namespace": key[1]}
            if tentative:
                context["tentative"] = "true"
            update = {"name": {"origin": "user", "name": key[2], "context": context},
                      "cumulative": True, "updateTime": now_rfc3339()}
            update.update(value)
            updates.append(update)
    return updates


def run_job(job):
    try:
        _run_job(job)
    except Exception:
        text = traceback.format_exc()
        log("job", job.id, "failed:", text)
        job.add_message("JOB_MESSAGE_ERROR", "Workflow failed. Causes: %s" % text)
        job.set_state("JOB_STATE_FAILED")
    finally:
        stop_worker_pool(job)


def _run_job(job):
    time.sleep(ARGS.pending_seconds)
    if job.cancel_requested.is_set():
        return
    if job.run_fault in ("fail", "hang"):
        job.set_state("JOB_STATE_RUNNING")
        if job.run_fault == "fail":
            time.sleep(0.2)
            job.add_message("JOB_MESSAGE_ERROR",
                            "Error message from worker: fake Dataflow: injected failure")
            job.add_message("JOB_MESSAGE_ERROR", "Workflow failed.")
            job.set_state("JOB_STATE_FAILED")
        else:
            job.cancel_requested.wait()
        return
    environment = json_format.MessageToDict(job.message)["environment"]
    options = environment["sdkPipelineOptions"]["options"]
    temp = environment["tempStoragePrefix"]
    bucket, _ = gcs_location(temp, "tempStoragePrefix")
    status, _ = storage_get("/storage/v1/b/%s" % urllib.parse.quote(bucket, safe=""))
    if status != 200:
        job.add_message("JOB_MESSAGE_ERROR", (
            "Workflow failed. Causes: Unable to create directory: %s (the bucket %s "
            "does not exist in the storage emulator: HTTP %d)") % (temp, bucket, status))
        job.set_state("JOB_STATE_FAILED")
        return
    pipeline = beam_runner_api_pb2.Pipeline()
    pipeline.CopyFrom(job.pipeline)
    externalize(pipeline, job)
    if job.cancel_requested.is_set():
        return
    if not ARGS.beam_job_endpoint:
        raise RuntimeError("fake Dataflow was started without --beam-job-endpoint: "
                           "it has no Beam job service to run the job on")
    channel = grpc.insecure_channel(ARGS.beam_job_endpoint)
    stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
    prepared = stub.Prepare(beam_job_api_pb2.PrepareJobRequest(
        job_name=job.name, pipeline=pipeline,
        pipeline_options=beam_options(options)), timeout=60)
    if prepared.artifact_staging_endpoint.url:
        artifact_service.offer_artifacts(
            beam_artifact_api_pb2_grpc.ArtifactStagingServiceStub(
                channel=grpc.insecure_channel(prepared.artifact_staging_endpoint.url)),
            artifact_service.ArtifactRetrievalService(
                artifact_service.BeamFilesystemHandler(None).file_reader),
            prepared.staging_session_token)
    states = stub.GetStateStream(
        beam_job_api_pb2.GetJobStateRequest(job_id=prepared.preparation_id))
    messages = stub.GetMessageStream(
        beam_job_api_pb2.JobMessagesRequest(job_id=prepared.preparation_id))
    ran = stub.Run(beam_job_api_pb2.RunJobRequest(
        preparation_id=prepared.preparation_id), timeout=60)
    with LOCK:
        job.beam_job_id = ran.job_id
    log("job", job.id, "is Beam job", ran.job_id)
    if job.cancel_requested.is_set():
        cancel_beam(job)

    def follow_messages():
        try:
            for response in messages:
                if response.HasField("message_response"):
                    m = response.message_response
                    importance = beam_job_api_pb2.JobMessage.MessageImportance.Name(
                        m.importance)
                    if importance not in IMPORTANCE:
                        importance = "JOB_MESSAGE_DEBUG"
                    text = m.message_text
                    if importance == "JOB_MESSAGE_ERROR":
                        text = "Error message from worker: " + text
                    job.add_message(importance, text)
        except grpc.RpcError as e:
            log("job", job.id, "message stream ended:", e.code())

    reader = threading.Thread(target=follow_messages, daemon=True)
    reader.start()
    final = None
    for event in states:
        name = BEAM_STATE.Enum.Name(event.state)
        if name == "RUNNING":
            job.set_state("JOB_STATE_RUNNING")
        # STOPPED is where a Beam job starts, before Run.
        if name in ("DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED"):
            final = name
            break
    reader.join(timeout=10)
    try:
        metrics = stub.GetJobMetrics(
            beam_job_api_pb2.GetJobMetricsRequest(job_id=ran.job_id), timeout=30)
        with LOCK:
            job.metrics = metric_updates(metrics)
    except grpc.RpcError as e:
        log("job", job.id, "no metrics:", e.code())
    if final == "DONE":
        job.set_state("JOB_STATE_DONE")
    elif final == "CANCELLED" or job.cancel_requested.is_set():
        job.set_state("JOB_STATE_CANCELLED")
    else:
        job.add_message("JOB_MESSAGE_ERROR",
                        "Workflow failed. (Beam's job ended in state %s)" % final)
        job.set_state("JOB_STATE_FAILED")


def cancel_beam(job):
    if job.beam_job_id is None:
        return
    try:
        stub = beam_job_api_pb2_grpc.JobServiceStub(
            grpc.insecure_channel(ARGS.beam_job_endpoint))
        stub.Cancel(beam_job_api_pb2.CancelJobRequest(job_id=job.beam_job_id), timeout=30)
    except grpc.RpcError as e:
        log("job", job.id, "Beam cancel failed:", e.code())


def cancel_job(job):
    job.cancel_requested.set()
    job.add_message("JOB_MESSAGE_BASIC", "Cancel request is committed for workflow job: %s."
                    % job.id)
    time.sleep(ARGS.cancel_seconds)
    with LOCK:
        beam_job = job.beam_job_id
    if beam_job is not None:
        cancel_beam(job)
    stop_worker_pool(job)
    job.set_state("JOB_STATE_CANCELLED")


# ---------------------------------------------------------------------------
# HTTP.

class Dropped(Exception):
    """Close the connection without answering."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-dataflow"

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            log(fmt % args)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, code, value, headers=None):
        data = json.dumps(value, indent=2).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, val in (headers or {}).items():
            self.send_header(key, val)
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, verb):
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        raw = self.read_body()
        if path.startswith("/__fake/"):
            return self.side(verb, path, raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = {
            "method": verb, "path": path, "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()
                        if k.lower() != "authorization"},
            "authorization": bool(self.headers.get("Authorization")),
            "body": body, "status": None, "time": now_rfc3339(),
        }
        with LOCK:
            REQUESTS.append(record)
        fault = None
        try:
            method, params = find_route(verb, path)
            auth = self.headers.get("Authorization", "")
            if not auth:
                raise ApiError(401, (
                    "Request is missing required authentication credential. Expected "
                    "OAuth 2 access token, login cookie or other valid authentication "
                    "credential. See https://developers.google.com/identity/sign-in/"
                    "web/devconsole-project."), details=[{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "CREDENTIALS_MISSING", "domain": "googleapis.com",
                        "metadata": {"service": "dataflow.googleapis.com",
                                     "method": method["id"]}}],
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
            if not re.fullmatch(r"Bearer [^\s]+", auth):
                raise ApiError(401, (
                    "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential."),
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})
            kind = FAULT_KIND.get(method["id"])
            fault = next_fault(kind) if kind else None
            if fault:
                record["fault"] = fault
            if fault == "drop_before":
                raise Dropped()
            if fault == "429":
                raise ApiError(429, (
                    "Quota exceeded for quota metric 'Job create requests' and limit "
                    "'Job create requests per minute per user' of service "
                    "'dataflow.googleapis.com'. (fake Dataflow: injected 429)"))
            if fault == "500":
                raise ApiError(500, "Internal error encountered. (fake Dataflow: injected 500)")
            if fault == "503":
                raise ApiError(503, "The service is currently unavailable. (fake Dataflow: injected 503)")
            check_query(method, query)
            if method.get("request") and verb in ("POST", "PUT", "PATCH"):
                kind_header = self.headers.get("Content-Type", "")
                if kind_header.split(";")[0].strip().lower() != "application/json":
                    raise bad_request([("", (
                        "fake Dataflow: a request body must be Content-Type "
                        "application/json, got %s") % json.dumps(kind_header))])
            handler = HANDLERS.get(method["id"])
            if handler is None:
                raise ApiError(501, "fake Dataflow does not implement %s" % method["id"])
            result = handler(params, raw, query)
            if fault == "drop":
                raise Dropped()
            record["status"] = 200
            self.answer(200, result)
        except Dropped:
            record["status"] = "dropped"
            log("dropping the connection of", verb, path)
            self.drop()
        except ApiError as e:
            if fault == "drop":
                record["status"] = "dropped"
                return self.drop()
            record["status"] = e.code
            record["error"] = e.message
            self.answer(e.code, e.body(), e.headers)
        except Exception:
            text = traceback.format_exc()
            log(text)
            record["status"] = 500
            self.answer(500, ApiError(500, "fake Dataflow crashed: " + text).body())

    def side(self, verb, path, raw):
        if (verb, path) == ("GET", "/__fake/health"):
            return self.answer(200, {"ok": True})
        if (verb, path) == ("GET", "/__fake/jobs"):
            with LOCK:
                jobs = [{
                    "id": j.id, "projectId": j.project, "location": j.location,
                    "name": j.name, "currentState": j.state,
                    "requestedState": j.requested_state, "beamJobId": j.beam_job_id,
                    "pipelineUrl": j.pipeline_url, "workerPoolLog": j.pool_log,
                    "runFault": j.run_fault, "messages": list(j.messages),
                    "metrics": list(j.metrics), "job": j.view("JOB_VIEW_ALL"),
                    "request": j.body,
                } for j in sorted(JOBS.values(), key=lambda j: j.create_time)]
            return self.answer(200, jobs)
        if (verb, path) == ("GET", "/__fake/requests"):
            with LOCK:
                return self.answer(200, list(REQUESTS))
        if (verb, path) == ("GET", "/__fake/faults"):
            with LOCK:
                return self.answer(200, QUEUED_FAULTS)
        if (verb, path) == ("DELETE", "/__fake/faults"):
            with LOCK:
                QUEUED_FAULTS.clear()
            return self.answer(200, {})
        if (verb, path) == ("POST", "/__fake/faults"):
            try:
                faults = json.loads(raw)
                assert isinstance(faults, dict), "a JSON object expected"
                for kind, queue in faults.items():
                    allowed = RUN_FAULTS if kind == "run" else HTTP_FAULTS
                    assert kind == "run" or kind in FAULTS, "unknown kind %r" % kind
                    assert isinstance(queue, list), "%s: a list expected" % kind
                    for fault in queue:
                        assert fault in allowed, "%s: unknown fault %r (one of %s)" % (
                            kind, fault, sorted(allowed))
            except (AssertionError, ValueError) as e:
                return self.answer(400, {"error": str(e)})
            with LOCK:
                for kind, queue in faults.items():
                    QUEUED_FAULTS.setdefault(kind, []).extend(queue)
                return self.answer(200, QUEUED_FAULTS)
        return self.answer(404, {"error": "no side endpoint %s %s" % (verb, path)})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--storage-endpoint", required=True,
                        help="the Cloud Storage emulator, http://HOST:PORT")
    parser.add_argument("--beam-job-endpoint",
                        help="Beam's job service (HOST:PORT) that runs the jobs")
    parser.add_argument("--worker-binary",
                        help="run by the worker pool with the container boot flags "
                             "in place of DOCKER environments")
    parser.add_argument("--log-dir", default=None,
                        help="where the worker pools' logs go (default: a temp dir)")
    parser.add_argument("--pending-seconds", type=float, default=0.3,
                        help="how long a new job stays JOB_STATE_PENDING")
    parser.add_argument("--cancel-seconds", type=float, default=0.5,
                        help="how long a cancel stays JOB_STATE_CANCELLING")
    parser.add_argument("--worker-grace-seconds", type=float, default=5.0,
                        help="how long a running job may have no live SDK worker "
                             "before it fails")
    parser.add_argument("--verbose", action="store_true")
    ARGS = parser.parse_args()
    ARGS.log_dir = ARGS.log_dir or tempfile.mkdtemp(prefix="fake-dataflow-")
    os.makedirs(ARGS.log_dir, exist_ok=True)
    if not ARGS.beam_job_endpoint:
        log("no --beam-job-endpoint: jobs will fail when they start")
    server = Server((ARGS.host, ARGS.port), Handler)

    def stop(*_):
        with LOCK:
            jobs = list(JOBS.values())
        for job in jobs:
            stop_worker_pool(job)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("fake Dataflow listening on http://%s:%d" % (ARGS.host, ARGS.port), flush=True)
    try:
        server.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
