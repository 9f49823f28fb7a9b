"""Training throughput (images/s) for resnet_9blocks and the demo generator at 256x256.

    python benchmarks/train_speed.py [--device cpu|cuda] [--iters 5] [--data ../shared/data/horse2zebra]

Times full CycleGAN iterations (both generators, both discriminators, Adam steps) on real
horse2zebra images after one warm-up iteration; on CUDA it also compares fp32 with mixed precision.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from cyclegan_edge.train.config import TrainConfig
from cyclegan_edge.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def images_per_second(cfg: TrainConfig, iters: int) -> float:
    trainer = Trainer(cfg)
    it = iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=0))
    trainer.step(next(it))  # warm-up (allocator, cudnn autotune)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        trainer.step(next(it))
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return iters * cfg.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "horse2zebra"))
    args = ap.parse_args()
    amp_modes = [False, True] if args.device.startswith("cuda") else [False]
    print(f"device {args.device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, kw in (("resnet_9blocks ngf64", {"netG": "resnet_9blocks"}),
                          ("demo mobile 16_16_32_16_32_32_16_16, ndf 32", {"netG": "mobile", "ndf": 32})):  # fmt: skip
            for amp in amp_modes:
                cfg = TrainConfig(dataroot=args.data, max_images=args.iters + 2, device=args.device, amp=amp,
                                  channels_last=amp, workers=0, output=tmp, name="speed", **kw)  # type: ignore[arg-type]
                ips = images_per_second(cfg, args.iters)
                print(f"{label:45s} 256x256 batch 1 {'amp ' if amp else 'fp32'}: {ips:.3f} images/s")


if __name__ == "__main__":
    main()
