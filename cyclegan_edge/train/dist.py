"""Where training runs: one process, or one per GPU/CPU slot under torchrun (DDP), and on which device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cyclegan_edge.errors import UsageError
from cyclegan_edge.train.config import TrainConfig


@dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    d = Dist(world=world, rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(d.local_rank)
    dist.init_process_group(backend)
    return d


def given_device(cfg: TrainConfig) -> torch.device | None:
    """``--device`` as a torch device (None: auto); UsageError for a name torch does not know or a GPU it lacks."""
    if cfg.device == "auto":
        return None
    try:
        device = torch.device(cfg.device)
    except RuntimeError:
        raise UsageError(f"--device {cfg.device}: not a device name (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        built = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise UsageError(f"--device {cfg.device}: {built} (torch {torch.__version__}); --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {cfg.device}: {torch.cuda.device_count()} CUDA GPU(s) visible (cuda:0 ...)")
    module = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)  # mps, xpu, ...
    if device.type not in ("cpu", "cuda") and not getattr(module, "is_available", lambda: False)():
        raise UsageError(f"--device {cfg.device}: not available here; --device cpu or auto")
    return device


def pick_device(cfg: TrainConfig, d: Dist) -> torch.device:
    device = given_device(cfg)
    if device is not None:
        return device
    return torch.device(f"cuda:{d.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
