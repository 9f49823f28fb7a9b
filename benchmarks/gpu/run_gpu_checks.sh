#!/usr/bin/env bash
# Everything that needs a GPU (issue 7), for a lent GPU machine; see benchmarks/gpu/README.md.
# Usage, from the repo root on the GPU machine:
#   bash benchmarks/gpu/run_gpu_checks.sh OUT_DIR [TRT_STAGE] [SECTIONS]
#   TRT_STAGE: a folder holding every chunk.* part from ../shared/tools/tensorrt-rtx-parts.sh ("" for none)
#   SECTIONS:  tests,inference,training (default: all three; split them over calls to stay under 10 minutes)
# Data: $CYCLEGAN_EDGE_DATA, else .gpu/data (benchmarks/gpu/stage_data.sh, carried), else ../shared/data.
# Writes at most 5 files to OUT_DIR: gpu.txt, gpu_tests.log, report.json, report.md, loss_curve.png.
set -uo pipefail
out=${1:?usage: run_gpu_checks.sh OUT_DIR [TRT_STAGE] [SECTIONS]}
stage=${2:-}
sections=${3:-tests,inference,training}
mkdir -p "$out"
data=${CYCLEGAN_EDGE_DATA:-}
[ -z "$data" ] && [ -d .gpu/data ] && data=$PWD/.gpu/data
[ -z "$data" ] && data=$(cd .. && pwd)/shared/data
[ -d "$data/horse2zebra" ] || echo "warning: no data at $data: most checks will skip (run stage_data.sh, carry .gpu/data)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CYCLEGAN_EDGE_DATA="$data"
if [ -n "$stage" ]; then
  tools=../shared/tools
  [ -d "$tools" ] || tools=shared/tools
  [ -d "$tools" ] || tools=benchmarks/gpu  # a copy carried with the tree
  bash "$tools/tensorrt-rtx-install.sh" "$stage" /tmp/trt-rtx 2>&1 | tail -2
  export PYTHONPATH="/tmp/trt-rtx:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -c "from cyclegan_edge.trt.loader import import_tensorrt as i; t, f = i(); print(f, t.__version__)" 2>&1 \
  | tail -1 | tee -a "$out/gpu.txt"
case ",$sections," in *,tests,*)
  python3 -m pytest -q -m gpu tests/test_gpu.py -rs -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log" ;;
esac
report_sections=$(echo "$sections" | tr ',' '\n' | grep -E '^(inference|training)$' | paste -sd, -)
if [ -n "$report_sections" ]; then
  python3 benchmarks/gpu/gpu_report.py --out "$out" --sections "$report_sections" --data "$data"
fi
