#!/usr/bin/env bash
# Issue 22's CUDA-graph accuracy check in one GPU call (benchmarks/graphs_accuracy.py): `reid run` q8 with
# three seeds eager and three with runtime.compile_mode="reduce-overhead" (CUDA graphs), then the final
# Rank-1 / mAP of both as mean ± sample std and whether they are level within the seed spread.
# At most 5 minutes on one H100/H200 (GRAPHS_SECONDS); nothing is fetched from the network.
#
# Run it from a session that has a device, as ONE call of the `run` tool, carrying the wheels (see gpu_check.sh):
#     run(command="bash benchmarks/gpu_graphs.sh", carry=[".whl"], timeout_s=360)
# Back in $OUT: graphs_accuracy.json (written after each group), graphs_accuracy.md (the table),
# graphs_accuracy.log, and each run's summary.json under runs/.
# Render the table into BENCHMARKS.md here with
#     python -m benchmarks.graphs_accuracy --from-json benchmarks/results/graphs_accuracy-h200.json --out BENCHMARKS.md
# GRAPHS_SECONDS caps the check (default 300); arguments go to benchmarks/graphs_accuracy.py
# (e.g. `--spec specs/strong-baseline.toml`); `OUT=/tmp/x bash benchmarks/gpu_graphs.sh --cpu-smoke` runs it on a CPU.
set -uo pipefail
since=$(date +%s.%N)
cd "$(dirname "$0")/.."
if ! python3 -c "import pydantic, fvcore, tomli_w, safetensors" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
fi
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 REID_CACHE="${REID_CACHE:-/tmp/reid-cache}"
out="${OUT:-/tmp/gpu-graphs}"
work=$(mktemp -d /tmp/reid-graphs.XXXXXX)
mkdir -p "$out/runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 -m benchmarks.graphs_accuracy --since "$since" --budget "${GRAPHS_SECONDS:-300}" --work "$work" \
  --json "$out/graphs_accuracy.json" --out "$out/graphs_accuracy.md" "$@" 2>&1 | tee "$out/graphs_accuracy.log"
status=${PIPESTATUS[0]}
(cd "$work" && find . -name summary.json -exec cp --parents {} "$out/runs/" \;)
exit "$status"
