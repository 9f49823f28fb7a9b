"""Distilled student vs the same student trained from scratch, at the same wall-clock budget (issue 14).

    python benchmarks/distill_vs_scratch.py [--minutes 15] [--runs ~/runs/distill_vs_scratch] [--data ../shared/data]

Teacher: the published GAN Compression horse->zebra generator (``weights/horse2zebra_gan_compression``).
Student: ``mobile:8_8_16_8_16_16_8_8`` with the teacher's ConvTranspose upsampling, both ways:

- distilled: ``python -m cyclegan_edge.distill`` (defaults: teacher-channel init, L1 10, features 0.01, GAN 1),
- from scratch: ``python -m cyclegan_edge.train`` (the CycleGAN recipe, both directions, random init),

each given ``--minutes`` of wall time on this machine (stopped with SIGTERM: the trainer saves and exits),
constant learning rate, 128 px crops at native scale (load 256), one worker. Then on all of horse2zebra/testA
at 256x256: PSNR/SSIM of each student's output against the teacher's, the evaluate command's domain score
(a classifier trained on horse2zebra/train*, cached), MACs, and ONNX Runtime FP32 latency on one thread
(interleaved rounds, median / min). A grid ``distill_vs_scratch.jpg`` (input | teacher | distilled | scratch)
is written next to this script. Runs go to ``--runs`` (outside the work tree; a second call reuses
finished runs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan_edge.bench.runner import run_benchmark
from cyclegan_edge.imaging.io import load_test_images, write_image
from cyclegan_edge.imaging.resize import resized
from cyclegan_edge.machine import cpu_flags, cpu_model
from cyclegan_edge.train.distill import compare_with_teacher

ROOT = Path(__file__).resolve().parents[1]
STUDENT = "8_8_16_8_16_16_8_8"
DONE = "benchmark_wall_seconds.txt"  # written once a timed run stopped cleanly
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
COMMON = ["--load-size", "256", "--crop-size", "128", "--workers", "1", "--n-epochs", "1000", "--n-epochs-decay", "0",
          "--save-every", "500", "--sample-every", "100000", "--log-every", "50"]  # fmt: skip


def timed_run(cmd: list[str], run_dir: Path, seconds: float) -> float:
    """Run a training command for ``seconds`` of wall time, then SIGTERM it (it saves first); returns the
    wall time it trained. A run that ended that way before (``DONE`` marker) is reused; any other run
    folder is an error (the trainer refuses it: move it away)."""
    done = run_dir / DONE
    if done.exists():
        print(f"  reusing {run_dir}")
        return float(done.read_text())
    start = time.monotonic()
    with open(run_dir.parent / f"{run_dir.name}.out", "w") as out:
        env = {**os.environ, **ONE_THREAD}  # the other core is someone else's: one thread, as on a busy host
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
    wall = time.monotonic() - start
    if proc.returncode not in (0, 130):
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}): see {out.name}")
    done.write_text(f"{wall:.1f}")
    return wall


def iterations(run_dir: Path) -> int:
    lines = (run_dir / "log.csv").read_text().splitlines()
    return int(lines[-1].split(",")[0]) if len(lines) > 1 else 0


def evaluate(generator: Path, data: Path, out_dir: Path) -> dict[str, Any]:
    subprocess.run([sys.executable, "-m", "cyclegan_edge.evaluate", str(generator), "--dataroot", str(data),
                    "--latency-iters", "0", "-o", str(out_dir)], check=True, capture_output=True)  # fmt: skip
    report: dict[str, Any] = json.loads((out_dir / "evaluate.json").read_text())
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--runs", type=Path, default=Path.home() / "runs" / "distill_vs_scratch")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    args = ap.parse_args()
    h2z = args.data / "horse2zebra"
    teacher = args.data / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth"
    args.runs.mkdir(parents=True, exist_ok=True)
    env_note = f"{cpu_model()}, vector flags {' '.join(cpu_flags())}"
    print(f"# Distilled vs from-scratch student, {args.minutes:g} min of wall time each\n{env_note}")
    py = [sys.executable, "-m"]
    out_flags = ["--output", str(args.runs)]
    runs = {
        "distilled": (py + ["cyclegan_edge.distill", "--teacher", str(teacher), "--dataroot", str(h2z),
                            "--student", f"mobile:{STUDENT}", "--name", "distilled"] + COMMON + out_flags,
                      "student.pth"),
        "scratch": (py + ["cyclegan_edge.train", "--dataroot", str(h2z), "--netG", "mobile", "--mobile-config", STUDENT,
                          "--upsample", "convtranspose", "--name", "scratch"] + COMMON + out_flags,
                    "G_A2B.pth"),
    }  # fmt: skip
    students: dict[str, Path] = {}
    for name, (cmd, gen_file) in runs.items():
        wall = timed_run(cmd, args.runs / name, args.minutes * 60)
        students[name] = args.runs / name / gen_file
        print(f"  {name}: {iterations(args.runs / name)} iterations in {wall / 60:.1f} min "
              f"(`{' '.join(cmd[1:])}`)")  # fmt: skip

    images = load_test_images(h2z / "testA", 10_000)
    print(f"\n## Against the teacher on all {len(images)} testA images at 256x256 (PyTorch outputs, 8-bit)")
    for name, path in students.items():
        r = compare_with_teacher(path, str(teacher), images, 256)
        print(f"  {name:9s}: PSNR {r['psnr_db_mean']:.2f} dB (min {r['psnr_db_min']:.2f}), SSIM {r['ssim_mean']:.3f}; "
              f"MACs {r['macs']['student'] / 1e9:.2f} G vs teacher {r['macs']['teacher'] / 1e9:.2f} G "
              f"({r['macs_ratio']:.2f}x fewer)")  # fmt: skip

    print("\n## Domain score (python -m cyclegan_edge.evaluate GEN --dataroot horse2zebra: 0 = looks like a horse "
          "photo, 1 = like real zebra photos; 95% interval)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in {"teacher": teacher, **students}.items():
            d = evaluate(path, h2z, Path(tmp) / name)["domain"]
            m = d["model"]
            print(f"  {name:9s}: {m['score']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] over {m['n']} images "
                  f"(classifier held-out balanced accuracy {d['classifier']['held_out_balanced_accuracy']:.3f})")

    print(f"\n## ONNX Runtime FP32, one thread, 256x256, batch 1: {args.rounds} interleaved rounds, ms median / min")
    lat: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, path in {"teacher": teacher, **students}.items():
            rows, _ = run_benchmark(path, ["onnxruntime-fp32"], [(256, 256)], [1], 10, 3, threads=1)
            lat.setdefault(name, []).append(rows[0]["latency_ms"]["p50"])
    for name, v in lat.items():
        ratio = statistics.median(lat["teacher"]) / statistics.median(v)
        print(f"  {name:9s}: {statistics.median(v):.1f} / {min(v):.1f} ms ({ratio:.2f}x the teacher's speed)")

    grid_images = resized([images[i] for i in (3, 27, 61, 95)], (256, 256))
    write_image(Path(__file__).with_name("distill_vs_scratch.jpg"), grid(grid_images, teacher, students))
    print("\ngrid: benchmarks/distill_vs_scratch.jpg (rows: input | teacher | distilled | scratch)")


def grid(images: list[np.ndarray], teacher: Path, students: dict[str, Path]) -> np.ndarray:
    import torch

    from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
    from cyclegan_edge.models import load_generator

    columns = [images]
    with torch.no_grad():
        for path in [teacher, *students.values()]:
            model = load_generator(path).model.eval()
            columns.append(tensor_to_frames(model(torch.from_numpy(frames_to_tensor(images))).numpy()))
    return np.vstack([np.hstack(col) for col in columns])


if __name__ == "__main__":
    main()
