#!/usr/bin/env bash
# Installs what the API and its tests need and the machine lacks. Debian/Ubuntu via apt;
# elsewhere it says what to install. Sourced by run.sh and test.sh.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "missing: $* — install it with your package manager (macOS: brew install redis)" >&2
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_redis_server() {
  # redis-cli (Debian: redis-tools, a dependency of redis-server) creates the test clusters.
  if { [ -n "${REDIS_SERVER_BIN:-}" ] || command -v redis-server >/dev/null; } \
    && { [ -n "${REDIS_CLI_BIN:-}" ] || command -v redis-cli >/dev/null; }; then return 0; fi
  echo "==> installing redis-server and redis-tools (Debian packages)"
  apt_install redis-server redis-tools
  # Debian's package may start a system service on 6379; the API and tests start their own.
}

ensure_build_tools() {
  # The runner's allocator (jemalloc) is C, built by cargo with make and cc.
  if command -v make >/dev/null && command -v cc >/dev/null; then return 0; fi
  echo "==> installing make and gcc (Debian packages, to build jemalloc)"
  apt_install make gcc libc6-dev
}

ensure_chromium() {
  # For the browser test of /docs and /redoc (headless, offline).
  if [ -n "${CHROMIUM_BIN:-}" ] && [ -n "${CHROMEDRIVER_BIN:-}" ]; then return 0; fi
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return 0; fi
  echo "==> installing chromium and chromium-driver (Debian packages, for the browser test)"
  apt_install chromium chromium-driver
}

# Python tools (cfn-lint, ...) go into a virtualenv under target/, so nothing touches the
# system Python (Debian's refuses `pip install` outside a venv).
PY_TOOLS="${PY_TOOLS:-$PWD/target/py-tools}"

ensure_py_tool() { # ensure_py_tool COMMAND [PIP_PACKAGE[==VERSION]]
  local cmd="$1" pkg="${2:-$1}"
  if [ -x "$PY_TOOLS/bin/$cmd" ]; then
    case "$pkg" in
      # Pinned: keep it only when it is that version.
      *==*) "$PY_TOOLS/bin/pip" show "${pkg%%==*}" 2>/dev/null | grep -qx "Version: ${pkg#*==}" && return 0 ;;
      *) return 0 ;;
    esac
  fi
  if ! command -v python3 >/dev/null; then apt_install python3 python3-venv; fi
  if [ ! -x "$PY_TOOLS/bin/pip" ]; then
    python3 -m venv "$PY_TOOLS" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$PY_TOOLS"; }
  fi
  echo "==> installing $pkg (PyPI, into $PY_TOOLS)"
  # `python -m pip`, not bin/pip: a virtualenv copied from elsewhere keeps pip scripts whose
  # first line names the original, which would install there.
  "$PY_TOOLS/bin/python3" -m pip install --quiet --disable-pip-version-check "$pkg"
}
