"""Training configuration: one dataclass, defaults equal to the CycleGAN paper / reference code."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan_edge.models.generator import UPSAMPLE_MODES


@dataclass
class TrainConfig:
    # data
    dataroot: str = ""  # ROOT with trainA/ and trainB/ (or use a_dir / b_dir)
    a_dir: str = ""
    b_dir: str = ""
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | none
    load_size: int = 286
    crop_size: int = 256
    no_flip: bool = False
    max_images: int = 0  # use at most this many images per domain (0 = all)
    workers: int = 2
    # model
    netG: str = "resnet_9blocks"  # resnet_9blocks | resnet_6blocks | mobile
    ngf: int = 64
    mobile_config: str = "16_16_32_16_32_32_16_16"
    upsample: str = "bilinear"  # bilinear | nearest | convtranspose (the published layers)
    ndf: int = 64
    n_layers_D: int = 3
    # recipe
    gan_mode: str = "lsgan"  # lsgan | vanilla
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    n_epochs: int = 100
    n_epochs_decay: int = 100
    batch_size: int = 1  # per process
    max_iters: int = 0  # stop after this many iterations in total (0 = all epochs)
    # speed
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler)
    channels_last: bool = True  # on CUDA
    compile: bool = False
    device: str = "auto"
    # bookkeeping
    name: str = "run"
    output: str = "runs"
    seed: int = 0
    save_every: int = 1000  # iterations; a checkpoint is also written at every epoch end
    sample_every: int = 500  # iterations between PNG grids
    log_every: int = 10
    resume: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(self.output) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


HELP = {
    "dataroot": "dataset root holding trainA/ and trainB/",
    "a_dir": "folder of domain A images (instead of --dataroot)",
    "b_dir": "folder of domain B images (instead of --dataroot)",
    "netG": "resnet_9blocks, resnet_6blocks or mobile (GAN Compression channel config)",
    "max_iters": "stop after this many iterations (0 = run all epochs)",
    "resume": "continue from RUN_DIR/checkpoints/latest.pt",
    "amp": "mixed precision on CUDA",
    "upsample": "generator upsampling: resize-conv (bilinear/nearest x2 + 3x3 conv: no checkerboard) or the "
    "published ConvTranspose layers",
}
CHOICES = {
    "preprocess": ["resize_and_crop", "crop", "scale_width", "none"],
    "gan_mode": ["lsgan", "vanilla"],
    "netG": ["resnet_9blocks", "resnet_6blocks", "mobile"],
    "upsample": list(UPSAMPLE_MODES),
}
ALIASES = {"a_dir": ["--a"], "b_dir": ["--b"]}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m cyclegan_edge.train",
        description="Train CycleGAN generators G: A->B and F: B->A (torchrun for several GPUs/processes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in dataclasses.fields(TrainConfig):
        flags = ["--" + f.name.replace("_", "-")] + ALIASES.get(f.name, [])
        default = f.default
        if isinstance(default, bool):
            ap.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=HELP.get(f.name))
        else:
            ap.add_argument(*flags, type=type(default), default=default, choices=CHOICES.get(f.name),
                            help=HELP.get(f.name, " "))  # fmt: skip
    return ap


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    return TrainConfig(**vars(ns))
