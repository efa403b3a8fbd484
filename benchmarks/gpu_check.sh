#!/usr/bin/env bash
# The prepared GPU check of issue 13: one table (cuda tests, quickstart on cuda, torchrun with one
# process on NCCL, training / input / embedding img/s against plain PyTorch loops, Market-size
# evaluation seconds, share of the measured bf16 convolution peak). About 4-5 minutes on one H100;
# nothing is fetched from the network and nothing is pip-installed into the image's environment.
#
# Run it from a session that has a device, as ONE call of the `run` tool, carrying the wheels:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=420)
# The table, the log and the JSON numbers land in $OUT (gpu_check.md, gpu_check.log, gpu_check.json).
#
# .whl holds what the device image lacks (pydantic, pydantic-core, annotated-types, typing-inspection,
# typing-extensions, fvcore, iopath, yacs, termcolor, tomli-w, safetensors; ~3.4 MB, ignored through .gitignore).
# Recreate it on the development machine with (see BENCHMARKS.md):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#         pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#         typing_extensions==4.16.0 yacs==0.1.8 termcolor==3.3.0 tomli_w==1.2.0 safetensors==0.8.0
#     python3 -m pip download --no-deps --no-binary=:all: -d /tmp/sdist fvcore==0.1.5.post20221221 iopath==0.1.10
#     python3 -m pip wheel --no-deps --no-build-isolation -w .whl /tmp/sdist/*
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 REID_CACHE=/tmp/reid-cache REID_DIST_TIMEOUT=60
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import torch, pydantic, fvcore, tomli_w, safetensors; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'pydantic', pydantic.VERSION)" || exit 3
timeout "${CHECK_SECONDS:-360}" python3 -m benchmarks.gpu_check --json "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
sed -n '/^| check |/,$p' "$out/gpu_check.log" > "$out/gpu_check.md"
exit "$status"
