#!/usr/bin/env bash
# Make Debian's Prometheus (prometheus, promtool) available for the tests that run a real
# Prometheus server on loopback and check the alert rules, best effort like
# install_chromium.sh: a failure here never fails the caller; the tests that need it say why
# they cannot run (and fail rather than skip when CI=true).
#   PLANE_PROMETHEUS                the server binary to use (default: prometheus on PATH)
#   PLANE_SKIP_PROMETHEUS_INSTALL=1 never install anything
set -uo pipefail
if command -v "${PLANE_PROMETHEUS:-prometheus}" >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "${PLANE_SKIP_PROMETHEUS_INSTALL:-0}" = "1" ]; then
  echo "prometheus: missing and PLANE_SKIP_PROMETHEUS_INSTALL=1; its tests cannot run"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "prometheus: missing and no apt-get here; its tests cannot run"
  exit 0
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "prometheus: missing and apt-get needs root; its tests cannot run"
    exit 0
  fi
fi
apt() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get "$@" >/dev/null 2>&1; }
echo "prometheus: installing Debian's prometheus package (apt-get install -y prometheus)"
if ! apt install -y -qq --no-install-recommends prometheus; then
  apt update -qq || true  # a fresh machine may have no package lists yet
  if ! apt install -y -qq --no-install-recommends prometheus; then
    echo "prometheus: apt-get install prometheus failed; its tests cannot run"
    exit 0
  fi
fi
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
exit 0
