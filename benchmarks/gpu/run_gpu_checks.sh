#!/usr/bin/env bash
# Everything that needs a GPU, in one run, for a lent GPU machine (see DEVELOPERS.md / issue 7).
# Usage (from the repo root, on the GPU machine): bash benchmarks/gpu/run_gpu_checks.sh OUT_DIR [TRT_STAGE]
#   TRT_STAGE: a folder with the chunk.* parts from ../shared/tools/tensorrt-rtx-parts.sh (optional)
# Writes OUT_DIR/gpu_tests.log, OUT_DIR/bench_*/report.{json,md} and OUT_DIR/train_speed.txt.
set -uo pipefail
out=${1:?usage: run_gpu_checks.sh OUT_DIR [TRT_STAGE]}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${2:-}" ]; then
  bash ../shared/tools/tensorrt-rtx-install.sh "$2" /tmp/trt-rtx 2>&1 | tail -2 || bash shared/tools/tensorrt-rtx-install.sh "$2" /tmp/trt-rtx
  export PYTHONPATH="/tmp/trt-rtx:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$out/gpu.txt"
python3 -m pytest -q -m gpu tests/test_gpu.py -rs 2>&1 | tee "$out/gpu_tests.log"
g=${CYCLEGAN_EDGE_DATA:-../shared/data}/weights/horse2zebra_gan_compression/latest_net_G.pth
python3 -m cyclegan_edge.bench "$g" --variants pytorch,onnxruntime-fp32,tensorrt-fp32,tensorrt-fp16 \
  --sizes 256,720p --batch 1 --iters 100 --warmup 10 --out "$out/bench_compressed"
python3 benchmarks/train_speed.py --device cuda --iters 20 | tee "$out/train_speed.txt"
