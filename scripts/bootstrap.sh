#!/usr/bin/env bash
# Create .venv and install the project into it. Idempotent: a no-op when pyproject.toml and this
# script are unchanged since the last successful install. Python 3.11 or 3.12 is required.
#   PYTHON       interpreter used to create the venv (default: python3)
#   TORCH_SPEC   the torch requirement installed first (default: torch==2.13.0, the CPU build on
#                this project's machines; e.g. "torch==2.13.0 --index-url <your CUDA index>")
#   CMAKE_ARGS   llama-cpp-python's build flags (default: a portable AVX2 CPU build without the
#                multimodal tool; the native build crashed in libggml-cpu on this project's CI
#                machines). It builds from source once (about 12 minutes on 2 cores), then pip's
#                wheel cache makes reinstalls take seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.reasoning-plane-installed
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
  exit 0
fi

echo "bootstrap: installing dependencies (first run takes a few minutes)"
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, so sentence-transformers does not pull a multi-GB CUDA build.
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_SPEC
export CMAKE_ARGS=${CMAKE_ARGS:-"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"}
.venv/bin/python -m pip install --quiet -e ".[dev,serving]"
echo "$want" > "$stamp"
echo "bootstrap: done"
