"""Checkerboard score of untrained generators of each upsampling mode, and of any given checkpoints.

    python benchmarks/evaluate/checkerboard_modes.py [--images ../shared/data/summer2winter_yosemite/testA]
        [--max-images 60] [--size 256] [--seeds 0,1,2] [--netG mobile] [cyclegan_edge/assets/photo2monet.pth ...]

Untrained = CycleGAN's init (conv weights N(0, 0.02)) from each seed: the pattern a transposed convolution
stamps before any training (Odena et al. 2016), with the same generator otherwise (the demo's mobile
channel plan, or resnet_9blocks). Scores use cyclegan_edge.evaluate.checkerboard (1 = no more alias-frequency
energy than the input photos).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from cyclegan_edge.evaluate.checkerboard import checkerboard_score
from cyclegan_edge.evaluate.data import image_files, load_squares
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
from cyclegan_edge.models import init_normal, load_generator, mobile_resnet_9blocks, resnet_9blocks
from cyclegan_edge.models.generator import UPSAMPLE_MODES


def run(model: torch.nn.Module, frames: Sequence[np.ndarray], batch: int = 8) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(frames), batch):
            out += tensor_to_frames(model(torch.from_numpy(frames_to_tensor(frames[i : i + batch]))).numpy())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="*", help="trained generators to score as well")
    ap.add_argument("--images", default="../shared/data/summer2winter_yosemite/testA")
    ap.add_argument("--max-images", type=int, default=60, help="spread evenly over the folder (0 = all)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--netG", default="mobile", choices=["mobile", "resnet_9blocks"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames = load_squares(image_files(args.images, args.max_images), args.size)
    print(f"{len(frames)} images from {args.images} at {args.size}x{args.size}; {args.netG} generators")
    print(f"{'generator':<44} {'seed':>4} {'score':>9} {'alias share':>12} {'s':>5}")
    for mode in UPSAMPLE_MODES:
        scores = []
        for seed in (int(s) for s in args.seeds.split(",")):
            torch.manual_seed(seed)
            model = mobile_resnet_9blocks(upsample=mode) if args.netG == "mobile" else resnet_9blocks(upsample=mode)
            init_normal(model)
            t = time.perf_counter()
            r = checkerboard_score(frames, run(model.eval(), frames))
            scores.append(r["score"])
            print(f"untrained {args.netG} {mode:<24} {seed:>4} {r['score']:>9.2f} {r['output_alias_share']:>12.2e} "
                  f"{time.perf_counter() - t:>5.0f}", flush=True)  # fmt: skip
        print(f"untrained {args.netG} {mode}: mean {np.mean(scores):.2f} over {len(scores)} seeds", flush=True)
    for path in args.checkpoints:
        g = load_generator(path)
        r = checkerboard_score(frames, run(g.model, frames))
        print(f"{path} ({g.config.name}): {r['score']:.2f} (alias share {r['output_alias_share']:.2e}, "
              f"input {r['input_alias_share']:.2e})")  # fmt: skip


if __name__ == "__main__":
    main()
