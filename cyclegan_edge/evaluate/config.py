"""Evaluation configuration: one dataclass whose defaults argparse reads (plus the classifier's recipe)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from cyclegan_edge.errors import ArgumentParser, UsageError
from cyclegan_edge.evaluate.domain import ClassifierRecipe
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
    threads: int = 1  # torch and ONNX Runtime threads (1: steady figures on a shared machine)
    backend: str = "auto"  # for non-.pth files: auto (by extension) | onnxruntime | openvino | tensorrt
    provider: str = "cpu"  # ONNX Runtime provider (cpu, so latency is CPU latency; auto/cuda/tensorrt)
    cache_dir: str = dataclasses.field(default_factory=default_cache_dir)
    output: str = ""  # folder for evaluate.json and evaluate.md
    seed: int = 0

    def __post_init__(self) -> None:
        for name, folder in DATAROOT_FOLDERS.items():
            if self.dataroot and not getattr(self, name):
                setattr(self, name, str(Path(self.dataroot) / folder))
        if self.direction not in ("A->B", "B->A"):
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
    "bootstrap": "bootstrap resamples for the domain score's 95%% interval",
    "latency_iters": "timed single-image calls (0 = skip)",
    "backend": "backend for files that are not .pth (see python -m cyclegan_edge.runtime --help)",
    "provider": "ONNX Runtime provider (cpu keeps latency a CPU figure)",
    "cache_dir": "where trained domain classifiers are kept",
    "output": "write evaluate.json and evaluate.md here",
}  # fmt: skip
CHOICES = {"direction": ["A->B", "B->A"], "backend": list(BACKENDS)}
RECIPE_PREFIX = "classifier_"


def _add(ap: argparse.ArgumentParser, name: str, default: object, help: str | None) -> None:
    flags = ["--" + name.replace("_", "-")] + (["-o"] if name == "output" else [])
    if isinstance(default, bool):
        ap.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=help)
    else:
        ap.add_argument(*flags, type=type(default), default=default, choices=CHOICES.get(name), help=help or " ")


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m cyclegan_edge.evaluate",
        description="Judge a generator on real test images: domain score (a classifier trained on the dataset, "
        "cached) beside colour-filter baselines, cycle L1, edge SSIM, checkerboard score, MACs, CPU latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("generator", help="generator to judge: .pth/.pt, .onnx, .plan/.engine")
    for f in dataclasses.fields(EvalConfig):
        if f.name != "generator":
            _add(ap, f.name, getattr(EvalConfig(), f.name), HELP.get(f.name))
    for f in dataclasses.fields(ClassifierRecipe):
        _add(ap, RECIPE_PREFIX + f.name, f.default, "domain classifier recipe (cache key)")
    return ap


def parse_args(argv: list[str] | None = None) -> tuple[EvalConfig, ClassifierRecipe]:
    ns = vars(build_parser().parse_args(argv))
    recipe = {k[len(RECIPE_PREFIX) :]: ns.pop(k) for k in list(ns) if k.startswith(RECIPE_PREFIX)}
    return EvalConfig(**ns), ClassifierRecipe(**recipe)
