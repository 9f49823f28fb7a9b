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


def launched_as_main() -> bool:
    """Whether this process is rank 0 of its launch (or the only one), before any process group exists: the one
    that checks, locks and writes the run folder."""
    return os.environ.get("RANK", "0") == "0"


def setup_dist(cfg: TrainConfig) -> tuple[Dist, torch.device]:
    """This process's place (one process, or one of torchrun's) and device, with the process group joined: NCCL
    where the device is a GPU, else gloo (it followed whether CUDA existed: --device cpu on a GPU machine failed)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    d = Dist() if world == 1 else Dist(world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))
    device = rank_device(given_device(cfg), d, torch.cuda.is_available(), torch.cuda.device_count(), cfg.device)
    if d.enabled:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(process_group_backend(device))
    return d, device


def rank_device(given: torch.device | None, d: Dist, cuda: bool, gpus: int, flag: str = "") -> torch.device:
    """The device of rank ``d`` from --device (``given``; None: auto): under torchrun the GPU of its LOCAL_RANK;
    UsageError for one GPU named for all ranks, or a rank past the GPUs there are."""
    if given is not None and given.type != "cuda":  # cpu, mps, ...
        return given
    if given is None and not cuda:  # auto, without a GPU
        return torch.device("cpu")
    if given is not None and given.index is not None:  # the GPU it names
        if d.enabled:
            raise UsageError(f"--device {flag}: under torchrun each process takes the GPU of its LOCAL_RANK: "
                             "--device cuda or auto")  # fmt: skip
        return given
    if d.local_rank >= gpus:
        raise UsageError(f"LOCAL_RANK {d.local_rank}: {gpus} CUDA GPU(s) here: --nproc-per-node {gpus} at most, or "
                         "--device cpu")  # fmt: skip
    return torch.device(f"cuda:{d.local_rank}")


def process_group_backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


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
