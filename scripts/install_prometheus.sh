#!/usr/bin/env bash
# Make Debian's Prometheus (prometheus, promtool) available for the tests that run a real
# Prometheus server on loopback and check the alert rules, best effort like
# install_chromium.sh: a failure here never fails the caller; the tests that need it say why
# they cannot run (and fail rather than skip when CI=true).
#   PLANE_PROMETHEUS                the server binary to use (default: prometheus on PATH)
#   PLANE_SKIP_PROMETHEUS_INSTALL=1 never install anything
set -uo pipefail
# shellcheck source=scripts/apt_install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"
if command -v "${PLANE_PROMETHEUS:-prometheus}" >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if ! apt_install prometheus prometheus PLANE_SKIP_PROMETHEUS_INSTALL; then
  echo "prometheus: its tests cannot run (with CI=true they fail)"
  exit 0
fi
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
exit 0
