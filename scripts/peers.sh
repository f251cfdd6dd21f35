# Installs the peer systems the tests talk to, into cached virtualenvs under
# $BIGFLOW_CACHE/peers. Sourced by scripts/test and bench/run; safe to run
# again: an install is skipped when its marker records the same request.
# Pinned sets live in scripts/peers/*.txt (full `pip freeze` of a working
# install, so every transitive version is fixed).

BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
PEERS_DIR="$BIGFLOW_CACHE/peers"
PEER_PINS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers"

# venv_install NAME PIP_ARGS... : a venv at $PEERS_DIR/NAME with PIP_ARGS installed.
venv_install() {
  local name="$1"; shift
  local dir="$PEERS_DIR/$name"
  local marker="$dir/.installed"
  local want="" arg
  for arg in "$@"; do
    # A requirements file is identified by its content, not its path.
    if [ -f "$arg" ]; then arg="$(basename "$arg"):$(sha256sum < "$arg" | cut -c1-16)"; fi
    want="$want $arg"
  done
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return 0
  fi
  echo "installing $name (pip $*)"
  rm -rf "$dir"
  mkdir -p "$PEERS_DIR"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$marker"
}

# Airflow (Cloud Composer's scheduler) with the Kubernetes provider: 3.1 and 2.10.
ensure_airflow() {
  venv_install airflow-3.1 -r "$PEER_PINS/airflow-3.1.txt"
  venv_install airflow-2.10 -r "$PEER_PINS/airflow-2.10.txt"
}

# apt_install PACKAGE...: installs Debian packages (as root, or with sudo).
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

# ensure_debian COMMAND:PACKAGE... : installs the packages whose commands are missing.
ensure_debian() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# Image tooling: skopeo reads archives, umoci unpacks them, bwrap runs a
# rootfs; the CNCF distribution registry and htpasswd serve pushes.
ensure_image_tools() {
  ensure_debian skopeo:skopeo umoci:umoci bwrap:bubblewrap ldd:libc-bin \
    docker-registry:docker-registry htpasswd:apache2-utils openssl:openssl
}

# Cloud Storage JSON API emulator (Composer's DAG bucket).
ensure_storage_emulator() {
  venv_install gcs-emulator -r "$PEER_PINS/gcs-emulator.txt"
}

# PySpark (a local Spark, with spark-submit) and the Java it runs on. (No
# protoc: Spark Connect's client builds with a vendored one, see
# crates/spark-connect-proto.)
ensure_spark() {
  ensure_debian java:openjdk-17-jre-headless
  venv_install pyspark-4.0.1 -r "$PEER_PINS/pyspark-4.0.1.txt"
}

# Apache Beam's Python SDK: its DirectRunner and wordcount are what the Rust
# pipelines are compared with (tests and bench/beam_wordcount.sh).
ensure_beam() {
  venv_install apache-beam-2.77.0 -r "$PEER_PINS/apache-beam-2.77.0.txt"
}

# The BigQuery REST API emulator. DuckDB would download its spatial
# extension at start; the pinned wheel ships it, so it is put where DuckDB looks.
ensure_bigquery_emulator() {
  venv_install bqemulator-1.4 -r "$PEER_PINS/bqemulator-1.4.txt"
  local ext ddir="$HOME/.duckdb/extensions/v1.5.5/linux_amd64"
  if [ ! -f "$ddir/spatial.duckdb_extension" ]; then
    ext="$(find "$PEERS_DIR/bqemulator-1.4" -name spatial.duckdb_extension | head -n 1)"
    mkdir -p "$ddir" && cp "$ext" "$ddir/"
  fi
}

# The fake Dataflow API's venv: Beam with its Dataflow client (apache-beam[gcp],
# for the reference Job JSON and for running the jobs), the dataflow.v1b3
# discovery document (google-api-python-client) and the Job message
# (google-cloud-dataflow-client) it validates requests with.
ensure_dataflow_fake() {
  venv_install dataflow-fake -r "$PEER_PINS/dataflow-fake.txt"
}

ensure_peers() {
  ensure_beam
  ensure_dataflow_fake
  ensure_airflow
  ensure_image_tools
  ensure_storage_emulator
  ensure_spark
  ensure_bigquery_emulator
}
