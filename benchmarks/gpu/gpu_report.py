"""The GPU report of issue 7: CUDA backends, TensorRT(-RTX) engines and mixed-precision training.

    python benchmarks/gpu/gpu_report.py --out OUT [--sections inference,training] [--quick]

inference: for the published compressed horse->zebra generator and a classic resnet_9blocks (seeded
random weights: latency and numerical parity do not depend on what the weights learned), every
variant (PyTorch CUDA FP32/FP16 with and without CUDA graphs, TensorRT FP32/FP16/INT8 engines built
from our ONNX) at 256x256 and 720p: latency percentiles, CUDA-event H2D/compute/D2H, and the largest
difference from PyTorch FP32 on the CPU for two real horse images. A variant that cannot be built or
run here is listed with its exact error.
training: resnet_9blocks on horse2zebra at the paper's 286->256 crops, fp32 then AMP + channels_last,
the same iterations each: images/s and the loss curve (loss_curve.png).

Writes OUT/report.json after every section (a run cut off keeps what it measured), OUT/report.md and
OUT/loss_curve.png. --quick makes everything tiny (a smoke test that also runs on a CPU).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cyclegan_edge.atomic import write_json  # noqa: E402
from cyclegan_edge.machine import machine_info  # noqa: E402
from cyclegan_edge.bench.runner import add_ratios, run_benchmark  # noqa: E402
from cyclegan_edge.imaging.files import list_files  # noqa: E402
from cyclegan_edge.imaging.io import read_image  # noqa: E402
from cyclegan_edge.trt.engine import SKIP_CHECK_ENV  # noqa: E402

GPU_VARIANTS = ("pytorch-cuda-fp32", "pytorch-cuda-fp16", "pytorch-cuda-fp32-graphs", "pytorch-cuda-fp16-graphs",
                "tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8")  # fmt: skip
# Largest |difference| from CPU FP32 PyTorch, in the model's [-1, 1] range (one grey level = 7.8e-3),
# that counts as parity; INT8 is judged on image quality elsewhere (export's report), so it gets none.
PARITY_LIMITS = {"fp32": 2e-3, "fp16": 5e-2}
LOSS_KEYS_CYCLE = ("cycle_A", "cycle_B")


def versions() -> dict[str, Any]:
    info = machine_info()
    try:
        import torch

        info["versions"]["torch_cuda"] = torch.version.cuda
        info["versions"]["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import cuda.bindings

        info["versions"]["cuda-python"] = cuda.bindings.__version__
    except (ImportError, AttributeError):
        info["versions"]["cuda-python"] = None
    return info


def make_models(workdir: Path, data: Path) -> dict[str, Path]:
    from cyclegan_edge.models import save_generator, seeded_resnet_9blocks

    models = {}
    compressed = data / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth"
    if compressed.is_file():
        models["compressed_h2z"] = compressed
    models["resnet_9blocks"] = save_generator(workdir / "resnet_9blocks.pth", seeded_resnet_9blocks(),
                                              {"note": "seeded random weights"})  # fmt: skip
    return models


def inference_section(args: argparse.Namespace, data: Path, workdir: Path) -> dict[str, Any]:
    from cyclegan_edge.runtime.backends import BackendOptions, open_backend

    horses = list_files([data / "horse2zebra" / "testA"])[:2]
    parity_frames = [read_image(p) for p in horses] or None
    calib = data / "horse2zebra" / "trainA"
    sizes = [(64, 64), (72, 128)] if args.quick else [(256, 256), (720, 1280)]
    h_max, w_max = sizes[-1]
    profile = (f"1x3x{sizes[0][0]}x{sizes[0][1]}", f"1x3x{h_max}x{w_max}", f"1x3x{h_max}x{w_max}")
    section: dict[str, Any] = {"sizes": sizes, "parity_images": [p.name for p in horses], "parity_limits": PARITY_LIMITS,
                               "models": {}}  # fmt: skip
    for name, path in make_models(workdir, data).items():
        t = time.perf_counter()
        reference = open_backend(path, BackendOptions(device="cpu"))
        rows, notes = run_benchmark(path, args.variants, sizes, [1], args.iters, args.warmup,
                                    calib=str(calib) if calib.is_dir() else None, parity_frames=parity_frames,
                                    reference=reference, trt_profile=profile)  # fmt: skip
        if rows:
            add_ratios(rows, rows[0]["variant"])
        for r in rows:
            r.pop("samples_ms", None)
            limit = PARITY_LIMITS.get(r["precision"])
            r["parity_ok"] = None if limit is None else r["max_abs_vs_reference"] <= limit
        section["models"][name] = {"path": str(path), "rows": rows, "notes": notes,
                                   "seconds": round(time.perf_counter() - t, 1)}  # fmt: skip
        print(f"{name}: {len(rows)} rows, {len(notes)} notes", flush=True)
    return section


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def training_section(args: argparse.Namespace, data: Path, workdir: Path) -> dict[str, Any]:
    from cyclegan_edge.train.config import TrainConfig
    from cyclegan_edge.train.trainer import Trainer

    iters = 20 if args.quick else args.train_iters
    size = ({"netG": "mobile", "mobile_config": "4_4_8_4_8_8_4_4", "ndf": 16, "load_size": 40, "crop_size": 32,
             "max_images": 40} if args.quick else {"netG": "resnet_9blocks"})
    section: dict[str, Any] = {"iterations": iters, "dataset": "horse2zebra trainA/trainB", "runs": {}}
    for label, amp in (("fp32", False), ("amp_channels_last", True)):
        cfg = TrainConfig(dataroot=str(data / "horse2zebra"), device=args.device, amp=amp, channels_last=amp,
                          max_iters=iters, workers=4, output=str(workdir), name=label, seed=0,
                          sample_every=10**9, save_every=10**9, log_every=50, **size)  # type: ignore[arg-type]
        trainer = Trainer(cfg)
        t = time.perf_counter()
        status = trainer.fit()
        seconds = time.perf_counter() - t
        rows = read_log(workdir / label / "log.csv")
        steady = [r["images_per_s"] for r in rows[min(10, len(rows) // 4):]]
        cycle = [sum(r[k] for k in LOSS_KEYS_CYCLE) for r in rows]
        window = max(1, min(50, len(cycle) // 4))
        first, last = float(np.mean(cycle[:window])), float(np.mean(cycle[-window:]))
        section["runs"][label] = {
            "exit_status": status, "device": str(trainer.device), "amp_dtype": str(trainer.amp_dtype),
            "channels_last": amp and trainer.device.type == "cuda", "iterations_logged": len(rows),
            "wall_seconds": round(seconds, 1), "images_per_s_median": float(np.median(steady)),
            "cycle_loss_first": first, "cycle_loss_last": last, "cycle_loss_window": window,
            "cycle_loss_went_down": last < first, "curve": {k: [r[k] for r in rows] for k in rows[0] if k != "epoch"},
        }  # fmt: skip
        print(f"training {label}: {section['runs'][label]['images_per_s_median']:.2f} img/s, cycle loss "
              f"{first:.3f} -> {last:.3f}", flush=True)  # fmt: skip
    runs = section["runs"]
    section["amp_speedup"] = runs["amp_channels_last"]["images_per_s_median"] / runs["fp32"]["images_per_s_median"]
    return section


def plot_losses(training: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, run in training["runs"].items():
        curve = run["curve"]
        k = max(1, len(curve["iteration"]) // 30)
        smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")  # noqa: E731
        it = curve["iteration"][k - 1:]
        axes[0].plot(it, smooth(np.add(curve["cycle_A"], curve["cycle_B"])), label=label)
        axes[1].plot(it, smooth(np.add(curve["D_A"], curve["D_B"])), label=label)
    axes[0].set_title("cycle loss (A + B, x10 weight)")
    axes[1].set_title("discriminator loss (A + B)")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    gpu = m.get("gpu") or {}
    v = {k: val for k, val in m["versions"].items() if val}
    lines = [f"# GPU report ({report['created']})", "",
             f"- GPU: {gpu.get('name', 'none')}, driver {gpu.get('driver')} (up to CUDA {gpu.get('driver_cuda')}); "
             f"CPU {m['cpu']}",
             "- libraries: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             f"- command: `{report['command']}`"]  # fmt: skip
    inf = report["sections"].get("inference")
    if inf:
        lines += ["", "## Inference (batch 1)", "",
                  "Parity: largest |difference| from PyTorch FP32 on the CPU, on real horse images, in the [-1, 1] "
                  f"range (limits {inf['parity_limits']}; one grey level is 7.8e-3)."]  # fmt: skip
        for name, model in inf["models"].items():
            lines += ["", f"### {name}", "", "| variant | backend | size | p50 ms | p99 ms | FPS | H2D ms | compute ms | "
                      "D2H ms | max abs diff | parity | vs first |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
            for r in model["rows"]:
                lat, g = r["latency_ms"], r.get("gpu_ms") or {}
                part = [f"{g[k]['p50']:.2f}" if k in g else "-" for k in ("h2d", "compute", "d2h")]
                ok = {True: "ok", False: "FAIL", None: "-"}[r["parity_ok"]]
                ratio = f"{r['ratio_to_baseline']:.2f}x" if r.get("ratio_to_baseline") else "-"
                lines.append(f"| {r['variant']} | {r['backend']} | {r['height']}x{r['width']} | {lat['p50']:.2f} | "
                             f"{lat['p99']:.2f} | {lat['fps']:.1f} | {' | '.join(part)} | "
                             f"{r['max_abs_vs_reference']:.1e} | {ok} | {ratio} |")  # fmt: skip
            lines += [""] + [f"- {n}" for n in model["notes"]] if model["notes"] else []
    tr = report["sections"].get("training")
    if tr:
        lines += ["", f"## Training ({tr['iterations']} iterations each, {tr['dataset']})", "",
                  "| run | device | amp | images/s (median) | wall s | cycle loss first -> last | went down |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for label, r in tr["runs"].items():
            lines.append(f"| {label} | {r['device']} | {r['amp_dtype']} | {r['images_per_s_median']:.2f} | "
                         f"{r['wall_seconds']} | {r['cycle_loss_first']:.3f} -> {r['cycle_loss_last']:.3f} | "
                         f"{r['cycle_loss_went_down']} |")  # fmt: skip
        lines += ["", f"AMP + channels_last vs fp32: {tr['amp_speedup']:.2f}x images/s. Curves: loss_curve.png."]
    for section, error in report.get("errors", {}).items():
        lines += ["", f"**{section} failed:** `{error}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sections", default="inference,training")
    ap.add_argument("--variants", default=",".join(GPU_VARIANTS))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--device", default="cuda", help="training device")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--train-iters", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts: a smoke test")
    args = ap.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.quick:
        args.iters, args.warmup = 3, 1
    # An engine whose sidecar says this GPU cannot run it (TensorRT-RTX on an H100) is tried anyway, so
    # the report holds TensorRT's own answer, not only ours.
    os.environ.setdefault(SKIP_CHECK_ENV, "1")
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "schema": "cyclegan-edge/gpu-report", "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/gpu/gpu_report.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": versions(), "engine_check_skipped": os.environ[SKIP_CHECK_ENV] == "1", "sections": {}, "errors": {},
    }  # fmt: skip
    runners = {"inference": inference_section, "training": training_section}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s.strip() for s in args.sections.split(",") if s.strip()]:
            try:
                report["sections"][name] = runners[name](args, data, Path(tmp) / name)
            except Exception as e:  # keep the other sections; the error is part of the result
                report["errors"][name] = f"{type(e).__name__}: {e}".splitlines()[0]
                print(f"{name} failed: {report['errors'][name]}", file=sys.stderr)
            if name == "training" and name in report["sections"]:
                plot_losses(report["sections"]["training"], out / "loss_curve.png")
            write_json(out / "report.json", report)
            (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
