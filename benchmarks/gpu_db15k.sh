#!/usr/bin/env bash
# MoCME on DB15K (structure + text, dimension 256, K = 3) on a CUDA GPU: per-epoch time and test MRR.
#
# Runs from a plain checkout on a machine whose python3 already holds a CUDA build of torch (a
# pip-installed torch==2.13.0 from PyPI's CPU index would not be one). When that Python lacks
# pydantic, the wheels in .whl/ (pydantic and its companions) are installed to /tmp/mocme-site.
# Expects data/DB15K/ (the OpenKE files) and data/features/DB15K/text.safetensors (from
# 'mocme features text DB15K --out data/features/DB15K'); see benchmarks/gpu_db15k.py --help.
#
# usage: benchmarks/gpu_db15k.sh [--minutes 8] [--epochs 100] [--precision fp32|bf16] [--compile] ...
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import pydantic" 2> /dev/null && compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mocme-site .whl/*.whl
    export PYTHONPATH="/tmp/mocme-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_db15k.py "$@"
