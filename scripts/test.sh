#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, including the dagster CLI checks users' CI
# runs (dg check defs, asset materialize) and the Dagster UI in headless Chromium
# (installed with apt-get when missing and possible; skipped otherwise). Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
bash scripts/install_chromium.sh   # best effort: the browser test is skipped without Chromium
bash scripts/install_prometheus.sh  # best effort: Prometheus/promtool for the telemetry and alert tests
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
