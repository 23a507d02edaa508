#!/usr/bin/env bash
# The converged rows a 2-core CPU cannot afford, on one CUDA GPU. By default: ComplEx-N3 and MoCME
# (structure + text, 1vsAll, shared experts) on FB15K-237 and WN18RR, seed 0, float32, each run until
# early stopping on validation (configs/*-1vsall.yaml, configs/baselines/*-complex-n3.yaml), the
# test split scored once. Rows go to their own file, benchmarks/results/mmkgc_gpu.json, so that they
# are never pooled with the CPU rows of the same variants (bf16, 24-epoch budget) in mmkgc.json.
#
# 1. Here, once (needs ../shared/data and the project's .venv with the 'text' extra):
#        benchmarks/gpu_rows.sh prepare [DATASET ...]        (default: FB15K-237 WN18RR)
#    fills gpu/ (ignored by git) afresh with those datasets' files, their text features
#    (`mocme features text`, stored as float16 to fit the device's 64 MiB; the loader reads them back
#    as float32) and the pydantic wheels that the GPU image lacks. FB15K-237 + WN18RR take about
#    50 MB, DB15K about 12 MB: prepare what one session will run.
# 2. On the GPU machine (device `run` with carry ["gpu"], timeout_s 600):
#        benchmarks/gpu_rows.sh run [MINUTES [SUITE-ARGUMENTS ...]]
#    runs benchmarks/mmkgc.py on the GPU for at most MINUTES (default 9) with SUITE-ARGUMENTS
#    (default: --datasets FB15K-237 WN18RR --only <the two variants above> --seeds 0), one run at a
#    time, and writes every finished row to $OUT/mmkgc_gpu.json (+ .md, figures) and each run's
#    config, metrics and trace to $OUT/runs/. A run cut off by the time limit is lost (its
#    checkpoints are too large to come back); rows already in benchmarks/results/mmkgc_gpu.json are
#    skipped, so a later call goes on with the next run. The DB15K ablation on the 1vsAll recipe
#    (8 variants x 3 seeds, seed by seed), after `prepare DB15K`:
#        benchmarks/gpu_rows.sh run 9 --datasets DB15K --variants ablation-1vsall --seeds 0 1 2
# 3. Here: copy $OUT/mmkgc_gpu.* to benchmarks/results/ and commit them.
# A smoke test of step 2 on a CPU: OUT=/tmp/out DEVICE=cpu SET="training.epochs=1 model.dim=16" \
#     benchmarks/gpu_rows.sh run 5
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=(FB15K-237 WN18RR)
DEFAULT_SUITE=(--datasets "${DATASETS[@]}" --seeds 0
    --only "ComplEx-N3 (structure, 1vsAll)" "MoCME (structure + text, 1vsAll, shared experts)")

prepare() {
    local data=${MOCME_DATA:-../shared/data} python=.venv/bin/python datasets=("$@")
    [ ${#datasets[@]} -gt 0 ] || datasets=("${DATASETS[@]}")
    [ -d gpu ] && chmod -R u+w gpu && rm -rf gpu  # only what this session will run travels
    mkdir -p gpu/data gpu/features gpu/wheels
    for dataset in "${datasets[@]}"; do
        cp -r "$data/$dataset" gpu/data/ && chmod -R u+w "gpu/data/$dataset"  # the shared copies are read-only
        "$python" -m mocme features text "$dataset" --data-dir "$data" --out "features/$dataset" --quiet
        mkdir -p "gpu/features/$dataset"
        "$python" - "features/$dataset/text.safetensors" "gpu/features/$dataset/text.safetensors" <<'EOF'
import sys
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
tensors["features"] = tensors["features"].half()
save_file(tensors, sys.argv[2])
EOF
    done
    local pins=()  # the versions this .venv runs, for the GPU image's Python 3.12
    for name in pydantic pydantic-core annotated-types typing-inspection; do
        pins+=("$name==$("$python" -m pip show "$name" | sed -n 's/^Version: //p')")
    done
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d gpu/wheels "${pins[@]}"
    du -sh gpu
}

run() {
    local minutes=${1:-9} out=${OUT:?run on the device machine, which sets OUT}
    shift $(($# > 0 ? 1 : 0))
    local suite=("$@")
    [ ${#suite[@]} -gt 0 ] || suite=("${DEFAULT_SUITE[@]}")
    python3 -c "import pydantic" 2> /dev/null || {
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/mocme-site gpu/wheels/*.whl
        export PYTHONPATH=/tmp/mocme-site
    }
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2> /dev/null || echo "no nvidia-smi"
    # the recorded rows, to skip what is done; not under a smoke test's DEVICE or SET, whose rows differ
    if [ -f benchmarks/results/mmkgc_gpu.json ] && [ -z "${DEVICE:-}${SET:-}" ]; then
        cp benchmarks/results/mmkgc_gpu.json "$out/"
    fi
    local status=0 overrides=()
    for item in device="${DEVICE:-cuda}" ${SET:-}; do overrides+=(--set "$item"); done
    PYTHONUNBUFFERED=1 timeout "$((minutes * 60))" python3 benchmarks/mmkgc.py "${suite[@]}" \
        "${overrides[@]}" --jobs 1 --threads 8 --no-extract \
        --data-dir "$PWD/gpu/data" --features-dir "$PWD/gpu/features" --runs-dir /tmp/gpu-runs \
        --out "$out/mmkgc_gpu" || status=$?
    for metrics in /tmp/gpu-runs/*/*/metrics.json; do
        [ -f "$metrics" ] || continue
        local run_dir target
        run_dir=$(dirname "$metrics")
        target="$out/runs/${run_dir#/tmp/gpu-runs/}"
        mkdir -p "$target"
        cp "$run_dir"/{config.yaml,metadata.json,metrics.json,trace.jsonl} "$target/" 2> /dev/null || true
    done
    if [ "$status" = 124 ]; then
        echo "stopped after $minutes minutes; finished rows are in $out/mmkgc_gpu.json"
        return 0
    fi
    return "$status"  # a failed run is not a time limit
}

case "${1:-}" in
    prepare) prepare "${@:2}" ;;
    run) run "${@:2}" ;;
    *) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' && exit 2 ;;
esac
