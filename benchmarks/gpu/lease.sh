#!/usr/bin/env bash
# Issue 19 in one device call (15 minutes of device time in all, 10 per command): the GPU report
# alone on the GPU first (its timings), then two summer<->winter season runs side by side at the
# paper's 256 px while the CUDA tests run, stopped (Ctrl-C: checkpoint + generators) before BUDGET.
# Usage, from the repo root on the GPU machine, with .gpu/data carried (stage_data.sh with
# TRAIN_PHOTOS=40, then stage_season.sh):
#   bash benchmarks/gpu/lease.sh OUT [BUDGET_SECONDS]
# OUT gets report.json, report.md, loss_curve.png and season.tgz.part-* (at most 15 MiB each: gpu.txt,
# gpu_tests.log, each run's generators, config.json, log.csv, losses.png, last sample grid and output;
# the resnet_9blocks generators in float16 to fit the way back, lease_unpack.py restores float32).
set -uo pipefail
out=${1:?usage: lease.sh OUT [BUDGET_SECONDS]}
budget=${2:-540}
t0=$SECONDS
data=$PWD/.gpu/data
runs=/tmp/season-runs
pack=/tmp/season-pack
rm -rf "$runs" "$pack"  # a second call on a machine still warm: no earlier run or pack
mkdir -p "$out" "$runs" "$pack"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CYCLEGAN_EDGE_DATA="$data"
left() { echo $((budget - (SECONDS - t0))); }

{ nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  nproc; } 2>&1 | tee "$pack/gpu.txt"

echo "== report ($(left) s left)"
timeout -k 20 -s INT 230 python3 benchmarks/gpu/gpu_report.py --out "$out" --sections inference,training --data "$data" \
  > "$pack/gpu_report.log" 2>&1
echo "report exit $?"; tail -45 "$pack/gpu_report.log"

echo "== season runs ($(left) s left)"
common=(--dataroot "$data/summer2winter_yosemite" -o "$runs" --workers 6 --sample-every 2000 --save-every 2000
        --log-every 500)
python3 -m cyclegan_edge.train "${common[@]}" --name s2w_mobile_ft --netG mobile --upsample bilinear \
  --init-from "$data/weights/horse2zebra_gan_compression/latest_net_G.pth" --n-epochs 3 --n-epochs-decay 3 \
  > "$runs/s2w_mobile_ft.out" 2>&1 &
pid_mobile=$!
python3 -m cyclegan_edge.train "${common[@]}" --name s2w_resnet9 --netG resnet_9blocks --n-epochs 2 \
  --n-epochs-decay 2 > "$runs/s2w_resnet9.out" 2>&1 &
pid_resnet=$!

echo "== CUDA tests, beside the season runs ($(left) s left)"
timeout -k 20 -s INT 150 python3 -m pytest -q -m gpu tests/test_gpu.py -rs -p no:cacheprovider > "$pack/gpu_tests.log" 2>&1
echo "tests exit $?"; tail -15 "$pack/gpu_tests.log"

stop_at=$((budget - 75))
while [ $((SECONDS - t0)) -lt $stop_at ] && { kill -0 $pid_mobile 2>/dev/null || kill -0 $pid_resnet 2>/dev/null; }; do
  sleep 5
done
echo "== stopping the season runs at $((SECONDS - t0)) s"
kill -INT $pid_mobile $pid_resnet 2>/dev/null
for i in $(seq 40); do kill -0 $pid_mobile 2>/dev/null || kill -0 $pid_resnet 2>/dev/null || break; sleep 1; done
kill -KILL $pid_mobile $pid_resnet 2>/dev/null
wait $pid_mobile; status_mobile=$?  # 130: stopped by Ctrl-C and saved; 137: killed (generators may be older)
wait $pid_resnet; status_resnet=$?
for run in s2w_mobile_ft s2w_resnet9; do
  [ $run = s2w_mobile_ft ] && status=$status_mobile || status=$status_resnet
  echo "-- $run: exit $status"; tr '\r' '\n' < "$runs/$run.out" | grep -v '^\s*$' | tail -4
  mkdir -p "$pack/$run"
  echo "$status" > "$pack/$run/exit_status"
  cp "$runs/$run.out" "$runs/$run"/{config.json,log.csv,losses.png} "$pack/$run/" 2>/dev/null
  last=$(ls "$runs/$run/samples"/*.png 2>/dev/null | sort | tail -1); [ -n "$last" ] && cp "$last" "$pack/$run/"
  python3 benchmarks/gpu/lease_unpack.py --halve "$runs/$run" "$pack/$run"
done
tar -czf - -C "$pack" . | split -b 15m - "$out/season.tgz.part-"
ls -la "$out"; echo "done at $((SECONDS - t0)) s"
