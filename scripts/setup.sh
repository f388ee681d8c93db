#!/usr/bin/env bash
# What `make up` and `make test` need, set up where this machine lets us,
# so that the two commands work from a machine with only Rust on it:
#
#   scripts/setup.sh up     Valkey (or redis-server), curl, a C compiler and
#                           the wasm32-wasip1 target
#   scripts/setup.sh test   the same, plus Python 3 with a virtual environment
#                           of the project's (.venv: the manifest checker's
#                           packages and schemathesis), Prometheus, promtool,
#                           Alertmanager and procps; and where it can, what
#                           the optional suites use (haproxy, docker-registry,
#                           buildah, skopeo, musl-tools, the musl target)
#
# Debian packages are installed when this runs as root on Debian (as CI
# does); otherwise it stops at once and prints the exact command to run.
# Quick when everything is there: nothing is fetched twice.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-}"
case "$what" in
  up | test) ;;
  *) echo "usage: scripts/setup.sh up|test" >&2; exit 2 ;;
esac
VENV=.venv
REQUIREMENTS=(manifests/check/requirements.txt e2e/requirements.txt)

say() { echo "setup ($what): $*" >&2; }
stop() {
  say "$1"
  echo "  run: $2" >&2
  echo "  then: make $what" >&2
  exit 1
}
as_root() { [ "$(id -u)" = 0 ]; }
on_debian() { command -v apt-get >/dev/null && command -v dpkg >/dev/null; }

# rustup's default location, for shells that did not source its profile.
if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi

# -- Debian packages ----------------------------------------------------------
# "program package": the package that brings the program (a file on PATH:
# the tests run /bin/kill, not the shell's). Required ones stop
# the run when missing; optional ones are installed when we can, and their
# suites say so and pass without them.
required=("cc build-essential" "curl curl" "kill procps")
optional=()
if ! command -v valkey-server >/dev/null; then required+=("redis-server redis-server"); fi
if [ "$what" = test ]; then
  # git: the link check lists the tracked files (check_docs.py).
  required+=("git git" "python3 python3" "prometheus prometheus" "promtool prometheus")
  # Debian calls it prometheus-alertmanager; elsewhere it is alertmanager.
  command -v alertmanager >/dev/null || required+=("prometheus-alertmanager prometheus-alertmanager")
  optional+=("haproxy haproxy" "docker-registry docker-registry" "buildah buildah" "skopeo skopeo" "musl-gcc musl-tools")
fi

missing() {
  local entry
  for entry in "$@"; do
    type -P "${entry%% *}" >/dev/null || echo "${entry#* }"
  done | sort -u
}
mapfile -t need < <(missing "${required[@]}")
# The venv module is a package of its own on Debian.
if [ "$what" = test ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need+=(python3-venv)
fi
mapfile -t could < <(missing "${optional[@]+"${optional[@]}"}")

if [ "${#need[@]}" -gt 0 ] || { [ "${#could[@]}" -gt 0 ] && as_root && on_debian; }; then
  if as_root && on_debian; then
    say "installing Debian packages: ${need[*]} ${could[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Prometheus and Alertmanager without their recommendations (a node
    # exporter and more that nothing here runs).
    quiet=() rest=()
    for p in "${need[@]}"; do
      case "$p" in
        prometheus | prometheus-alertmanager) quiet+=("$p") ;;
        *) rest+=("$p") ;;
      esac
    done
    if [ "${#quiet[@]}" -gt 0 ]; then apt-get install -y -qq --no-install-recommends "${quiet[@]}" >/dev/null; fi
    apt-get install -y -qq "${rest[@]+"${rest[@]}"}" "${could[@]+"${could[@]}"}" ca-certificates >/dev/null
  elif on_debian; then
    stop "missing Debian packages: ${need[*]}" "sudo apt-get install -y ${need[*]}"
  else
    stop "missing commands (Debian package names): ${need[*]}" "install them with this system's package manager"
  fi
elif [ "${#could[@]}" -gt 0 ]; then
  say "optional, their suites skip without them: ${could[*]} (sudo apt-get install -y ${could[*]})"
fi

# -- Rust targets -------------------------------------------------------------
targets=(wasm32-wasip1)
if [ "$what" = test ]; then targets+=(x86_64-unknown-linux-musl); fi
if command -v rustup >/dev/null; then
  installed="$(rustup target list --installed)"
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || { say "adding the Rust target $t"; rustup target add "$t"; }
  done
elif ! command -v cargo >/dev/null; then
  stop "no Rust toolchain (cargo) on PATH" "curl --proto '=https' -sSf https://sh.rustup.rs | sh"
elif ! [ -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip1" ]; then
  stop "Rust has no wasm32-wasip1 target and there is no rustup to add it" "install the wasm32-wasip1 standard library for $(rustc --version)"
fi

# -- Python packages, in the project's virtual environment ----------------------
if [ "$what" = test ]; then
  stamp="$VENV/.requirements"
  if ! [ -x "$VENV/bin/python3" ]; then
    say "making the virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  if ! cat "${REQUIREMENTS[@]}" | cmp -s - "$stamp"; then
    say "installing ${REQUIREMENTS[*]} into $VENV"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check -r "${REQUIREMENTS[0]}" -r "${REQUIREMENTS[1]}"
    cat "${REQUIREMENTS[@]}" >"$stamp"
  fi
fi
