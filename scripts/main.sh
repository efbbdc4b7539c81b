#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded defaults, then print the catalog.
# Uses PLANE_DATABASE_URL instead of the embedded PostgreSQL when it is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export DAGSTER_HOME="$PWD"   # this folder's dagster.yaml: PostgreSQL instance storage
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/dagster job execute -m stack_defs -j main_job "$@"
echo
.venv/bin/plane catalog
