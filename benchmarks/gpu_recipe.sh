#!/usr/bin/env bash
# Issue 22's whole recipe in one GPU call (benchmarks/gpu_recipe.py): render and decode the Market-size
# synthetic set, time the plain PyTorch loop (torchvision ResNet-50, DataLoader workers, bf16, channels_last)
# for a minute, then `reid run` the full 120-epoch market1501-bot recipe on it (evaluated at the end) while
# NVML samples the GPU's utilisation. Meant to end within 9 minutes, start-up included: the recipe's run
# is stopped (SIGTERM, a resumable state saved) when RECIPE_SECONDS (default 530) would be exceeded.
#
# Run it from a session that has a device, as ONE call of the `run` tool, carrying the wheels (see gpu_check.sh):
#     run(command="bash benchmarks/gpu_recipe.sh", carry=[".whl"], timeout_s=600)
# Back in $OUT: gpu_recipe.json (written after each section), gpu_recipe.md (the table), gpu_recipe.log,
# recipe.log (reid run's output), recipe_metrics.jsonl and recipe_summary.json (the run's records).
# Render the table into BENCHMARKS.md here with
#     python -m benchmarks.gpu_recipe --from-json benchmarks/results/gpu_recipe-h200.json --out BENCHMARKS.md
# RECIPE_SPEC picks another spec (default specs/market1501-bot.toml); RECIPE_SETS adds --set overrides
# (e.g. 'runtime.compile=true runtime.compile_mode="reduce-overhead"'). Arguments go to benchmarks/gpu_recipe.py:
# `OUT=/tmp/x bash benchmarks/gpu_recipe.sh --cpu-smoke` runs the whole script on a CPU in seconds.
set -uo pipefail
start=$SECONDS
since=$(date +%s.%N)
cd "$(dirname "$0")/.."
if ! python3 -c "import pydantic, fvcore, tomli_w, safetensors" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
fi
# the decoded set (2.5 GB) and the run's checkpoint in memory where /dev/shm has room, else on the disk
room=$(df --output=avail -BG /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
scratch=$([ "${room:-0}" -ge 8 ] && echo /dev/shm || echo /tmp)
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 REID_CACHE="${REID_CACHE:-$scratch/reid-cache}"
out="${OUT:-/tmp/gpu-recipe}"
work="$scratch/reid-recipe"
mkdir -p "$out" "$work"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
sets=()
for s in ${RECIPE_SETS:-}; do sets+=(--set "$s"); done
python3 -m benchmarks.gpu_recipe --spec "${RECIPE_SPEC:-specs/market1501-bot.toml}" --since "$since" \
  --budget "${RECIPE_SECONDS:-530}" --work "$work" --json "$out/gpu_recipe.json" --out "$out/gpu_recipe.md" \
  "${sets[@]}" "$@" 2>&1 | tee "$out/gpu_recipe.log"
status=${PIPESTATUS[0]}
cp "$work/recipe.log" "$out/recipe.log" 2>/dev/null
cp "$work/run/metrics.jsonl" "$out/recipe_metrics.jsonl" 2>/dev/null
cp "$work/run/summary.json" "$out/recipe_summary.json" 2>/dev/null
echo "gpu_recipe.sh: $((SECONDS - start)) s"
exit "$status"
