#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded defaults *through the reasoning plane*,
# then print the catalog. This machine is declared an EU zone with ISO 27001 and GDPR controls
# (override with PLANE_LOCAL_ZONE / PLANE_LOCAL_CERTIFICATIONS): `plane run` places every asset
# of main_job here or rejects it with the reason (e.g. US personal data), runs what was placed,
# and prints a table of both. Uses PLANE_DATABASE_URL instead of the embedded PostgreSQL when set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export DAGSTER_HOME="$PWD"   # this folder's dagster.yaml: PostgreSQL instance storage
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PLANE_LOCAL_ZONE=${PLANE_LOCAL_ZONE:-EU}
export PLANE_LOCAL_CERTIFICATIONS=${PLANE_LOCAL_CERTIFICATIONS:-ISO27001,GDPR}
.venv/bin/plane run --job main_job "$@"
echo
.venv/bin/plane catalog
