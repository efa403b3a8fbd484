#!/usr/bin/env bash
# Issue 15's calibration on one GPU: q8, q11 and the strong baseline at 20 epochs from scratch, three
# seeds each, plus a grid of strong-baseline variants (eval distance × triplet mining × PK identities),
# all through `reid sweep` (the same code a user runs), 19 runs at once on the one GPU (about 3 minutes
# on an H200).
#
# Run it from a session that has a device, carrying the wheels the image lacks (see gpu_check.sh):
#     run(command="bash benchmarks/gpu_calibrate.sh", carry=[".whl"], timeout_s=...)
# CAL_SECONDS caps the sweeps (default 300); unfinished runs are simply absent from the tables.
# CAL_SETS adds --set overrides to every run (the CPU smoke test of this script uses tiny data).
# Back in $OUT: calibration.tar.gz (every run's spec.toml, summary.json, metrics.jsonl and the
# sweep tables, no checkpoints) and calibrate.log. Unpack it into runs/gpu and score it with
#     python -m benchmarks.calibrate_synthetic --runs runs/gpu --no-train --label gpu --sweep runs/gpu/strong-grid \
#         --out BENCHMARKS.md
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import pydantic, fvcore, tomli_w, safetensors" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
fi
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 REID_CACHE="${REID_CACHE:-/tmp/reid-cache}"
out="${OUT:-/tmp/gpu-calibrate}"
runs="${CAL_RUNS:-/dev/shm/reid-calibration}"   # checkpoints land in memory, not on the disk
mkdir -p "$out" "$runs"
sets=()
for s in ${CAL_SETS:-}; do sets+=(--set "$s"); done
log="$out/calibrate.log"
{
  python3 -m reid data info specs/q8.toml "${sets[@]}" | tail -3   # generate the data once, before the runs share it
  start=$SECONDS
  timeout "${CAL_SECONDS:-300}" bash -c '
    sweep() { python3 -m reid sweep "$@" > /dev/null 2>&1; echo "sweep $1 ended: rc $?"; }
    sweep specs/q8.toml --out "$0/q8" --seeds 3 -j 3 "${@:1}" &
    sweep specs/q11.toml --out "$0/q11" --seeds 3 -j 3 "${@:1}" &
    sweep specs/strong-baseline.toml --out "$0/strong-baseline" --seeds 3 -j 3 "${@:1}" &
    sweep specs/strong-baseline.toml --out "$0/strong-grid" --seeds 3 -j 10 \
      --grid eval.distance=euclidean,cosine --grid loss.mining=hard,all --grid sampler.p=16,8 "${@:1}" &
    wait' "$runs" "${sets[@]}"
  echo "sweeps: $((SECONDS - start)) s (rc $?)"
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
} 2>&1 | tee "$log"
tar -czf "$out/calibration.tar.gz" -C "$runs" --exclude=checkpoints --exclude='*.pt' .
ls -la "$out"
