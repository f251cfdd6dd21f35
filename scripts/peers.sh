# Installs the peer systems the tests talk to, into cached virtualenvs under
# $BIGFLOW_CACHE/peers, and exports where they are. Sourced by scripts/test;
# safe to run again (each install is skipped when its marker exists).

BIGFLOW_CACHE="${BIGFLOW_CACHE:-$HOME/.cache/bigflow}"
PEERS_DIR="$BIGFLOW_CACHE/peers"

# venv_install NAME PIP_SPEC... : a venv at $PEERS_DIR/NAME with the specs installed.
venv_install() {
  local name="$1"; shift
  local dir="$PEERS_DIR/$name"
  local marker="$dir/.installed"
  local want="$*"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return 0
  fi
  echo "installing $name: $want"
  rm -rf "$dir"
  mkdir -p "$PEERS_DIR"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$marker"
}

ensure_peers() {
  :
}
