"""Evaluation configuration: one dataclass whose defaults argparse reads (plus the classifier's recipe)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from cyclegan_edge.errors import ArgumentParser, HelpFormatter, UsageError, int_arg
from cyclegan_edge.model_files import DIRECTIONS, direction_arg
from cyclegan_edge.runtime.backends import BACKENDS


def default_cache_dir() -> str:
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cyclegan_edge")


DATAROOT_FOLDERS = {"a": "testA", "b": "testB", "train_a": "trainA", "train_b": "trainB"}


@dataclass
class EvalConfig:
    generator: str = ""  # GENERATOR (positional): .pth/.pt, .onnx, .plan/.engine
    reverse: str = ""  # the opposite direction, for cycle L1 (a training state holds both)
    direction: str = "A->B"  # A->B: translate --a toward B; B->A: translate --b toward A
    dataroot: str = ""  # ROOT with testA/ testB/ trainA/ trainB/
    a: str = ""
    b: str = ""
    train_a: str = ""
    train_b: str = ""
    size: int = 256  # test images are centre-squared and resized to size x size (multiple of 4)
    max_images: int = 0  # per test folder, spread evenly (0 = all)
    batch: int = 8
    bootstrap: int = 2000
    latency_iters: int = 20  # 0 = skip the latency measurement
    threads: int = 1  # torch, ONNX Runtime and OpenVINO threads (1: steady figures on a shared machine)
    backend: str = "auto"  # for non-.pth files: auto (the runtime's choice on this CPU) | onnxruntime | openvino | tensorrt
    provider: str = "cpu"  # ONNX Runtime provider when it runs the model (cpu: CPU latency; auto/cuda/tensorrt)
    cache_dir: str = dataclasses.field(default_factory=default_cache_dir)
    output: str = ""  # folder for evaluate.json and evaluate.md
    overwrite: bool = False  # replace the evaluation --output already holds
    seed: int = 0

    def __post_init__(self) -> None:
        for name, folder in DATAROOT_FOLDERS.items():
            if self.dataroot and not getattr(self, name):
                setattr(self, name, str(Path(self.dataroot) / folder))
        if self.direction not in DIRECTIONS:
            raise UsageError(f"direction must be A->B or B->A, got {self.direction!r}")
        if self.size % 4 or self.size < 8:
            raise UsageError(f"--size must be a multiple of 4 and at least 8, got {self.size}")

    def missing_folders(self) -> list[str]:
        return ["--" + n.replace("_", "-") for n in DATAROOT_FOLDERS if not getattr(self, n)]


HELP = {
    "reverse": "generator of the opposite direction (for cycle L1); a training state holds both",
    "direction": "A->B translates --a toward B; B->A translates --b toward A (the classifier is shared)",
    "dataroot": "dataset root with testA/ testB/ trainA/ trainB/ (or give the four folders)",
    "a": "domain A test images", "b": "domain B test images",
    "train_a": "domain A training images (for the domain classifier)", "train_b": "domain B training images",
    "size": "evaluate at size x size (centre square of each image, resized)",
    "max_images": "at most this many test images per domain, spread evenly (0 = all)",
    "batch": "images per call when translating the test images",
    "bootstrap": "bootstrap resamples for the domain score's 95%% interval",
    "latency_iters": "timed single-image calls (0 = skip)",
    "threads": "CPU threads for PyTorch, ONNX Runtime and OpenVINO (1 keeps figures steady on a shared machine)",
    "backend": "backend for files that are not .pth: auto = what python -m cyclegan_edge.runtime picks on this CPU "
               "(an .onnx: OpenVINO on x86-64 when installed, else ONNX Runtime); or force one",
    "provider": "ONNX Runtime provider when ONNX Runtime runs the model (cpu keeps latency a CPU figure)",
    "cache_dir": "where trained domain classifiers are kept",
    "output": "folder to write evaluate.json and evaluate.md into (checked before any work)",
    "overwrite": "replace an evaluation --output already holds (default: keep it; the command stops before any work)",
    "seed": "seed of the bootstrap and of the latency test input",
}  # fmt: skip


@dataclass(frozen=True)
class ClassifierRecipe:
    size: int = 96  # classifier input side (images are stored at 8/7 of it and cropped)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 20  # channels of the first layer; x2 per stage
    max_images: int = 0  # per class (0 = all training images)
    seed: int = 0
    # colour jitter, on both classes (absolute levels; photos here: mean |chroma| 0.04-0.05, mean luma 0.41)
    saturation_max: float = 0.1  # mean |chroma| ~ U(0, max), in [0, 1] units ...
    greyscale_p: float = 0.2  # ... or 0 with this probability
    luma_min: float = 0.25  # mean luma ~ U(min, max)
    luma_max: float = 0.6
    tint: float = 0.05  # colour cast per channel ~ U(-t, t)
    haze_p: float = 0.2  # blend toward a random light colour ...
    haze_max: float = 0.35  # ... by U(0, max)
    min_crop: float = 0.75  # random crop side, as a fraction of the image side

    @property
    def stored_side(self) -> int:
        return round(self.size * 8 / 7)


RECIPE_HELP = {
    "size": "classifier input side in px",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "lr": "peak learning rate (one-cycle schedule)",
    "width": "channels of the first layer (doubled at each of 4 stages)",
    "max_images": "training images per class, spread evenly (0 = all)",
    "seed": "training seed",
    "saturation_max": "colour jitter: mean absolute chroma drawn from U(0, this)",
    "greyscale_p": "colour jitter: probability of greyscale",
    "luma_min": "colour jitter: lowest mean luma",
    "luma_max": "colour jitter: highest mean luma",
    "tint": "colour jitter: colour cast per channel drawn from U(-this, this)",
    "haze_p": "colour jitter: probability of a haze",
    "haze_max": "colour jitter: strongest haze blend",
    "min_crop": "random crop side, smallest fraction of the image side",
}
CHOICES = {"backend": list(BACKENDS)}
# the ints' allowed ranges, refused up front (--batch 0 ended in "range() arg 3 must not be zero"; a classifier batch
# of 1 skipped every batch, BatchNorm needing two, and reported an untrained classifier)
RANGES = {"max_images": (0, 10**9), "batch": (1, 4096), "bootstrap": (1, 10**7), "latency_iters": (0, 10**6),
          "threads": (1, 1024), "seed": (0, 2**32 - 1), "classifier_size": (16, 4096), "classifier_epochs": (1, 10**4),
          "classifier_batch_size": (2, 10**5), "classifier_width": (1, 1024), "classifier_max_images": (0, 10**9),
          "classifier_seed": (0, 2**32 - 1)}  # fmt: skip
TYPES = {"direction": direction_arg}  # A->B, B->A (pix2pix's AtoB, BtoA taken too)
RECIPE_PREFIX = "classifier_"


def _add(ap: argparse.ArgumentParser, name: str, default: object, help: str) -> None:
    flags = ["--" + name.replace("_", "-")] + (["-o"] if name == "output" else [])
    if isinstance(default, bool):
        ap.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=help)
    else:
        kind = int_arg(*RANGES[name]) if name in RANGES else TYPES.get(name, type(default))
        ap.add_argument(*flags, type=kind, default=default, choices=CHOICES.get(name), help=help)


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m cyclegan_edge.evaluate",
        description="Judge a generator on real test images: domain score (a classifier trained on the dataset, "
        "cached) beside colour-filter baselines, cycle L1, edge SSIM, checkerboard score, MACs, CPU latency.",
        formatter_class=HelpFormatter,
    )
    ap.add_argument("generator", help="generator to judge: .pth/.pt, .onnx, OpenVINO .xml, TensorRT .plan/.engine")
    for f in dataclasses.fields(EvalConfig):
        if f.name != "generator":
            _add(ap, f.name, getattr(EvalConfig(), f.name), HELP[f.name])
    for f in dataclasses.fields(ClassifierRecipe):
        _add(ap, RECIPE_PREFIX + f.name, f.default, f"domain classifier recipe (part of its cache key): {RECIPE_HELP[f.name]}")
    return ap


def parse_args(argv: list[str] | None = None) -> tuple[EvalConfig, ClassifierRecipe]:
    ns = vars(build_parser().parse_args(argv))
    recipe = {k[len(RECIPE_PREFIX) :]: ns.pop(k) for k in list(ns) if k.startswith(RECIPE_PREFIX)}
    return EvalConfig(**ns), ClassifierRecipe(**recipe)
