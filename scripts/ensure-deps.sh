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
  if [ -n "${REDIS_SERVER_BIN:-}" ] || command -v redis-server >/dev/null; then return 0; fi
  echo "==> installing redis-server (Debian package)"
  apt_install redis-server
  # Debian's package may start a system service on 6379; the API and tests start their own.
}

ensure_chromium() {
  # For the browser test of /docs and /redoc (headless, offline).
  if [ -n "${CHROMIUM_BIN:-}" ] && [ -n "${CHROMEDRIVER_BIN:-}" ]; then return 0; fi
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return 0; fi
  echo "==> installing chromium and chromium-driver (Debian packages, for the browser test)"
  apt_install chromium chromium-driver
}
