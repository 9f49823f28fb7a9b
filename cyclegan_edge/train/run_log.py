"""What a training run shows and keeps as it goes: the progress bar, log.csv and TensorBoard."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan_edge.progress import progress_bar


@dataclass
class Position:
    epoch: int = 0
    batch: int = 0  # batches done in this epoch
    iteration: int = 0  # batches done in total


class RunLog:
    """The progress bar, log.csv (one row per iteration, flushed) and TensorBoard when installed; main rank only."""

    def __init__(self, run_dir: Path, main: bool, total: int, done: int) -> None:
        self.bar = progress_bar(total=total, initial=done, disable=not main, unit="it", dynamic_ncols=True)
        self.csv_file = open(run_dir / "log.csv", "a", newline="") if main else None
        self.writer: Any = None
        self.tb: Any = None
        if main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                pass

    def __enter__(self) -> RunLog:
        return self

    def row(self, pos: Position, lr: float, ips: float, losses: dict[str, float], show: bool) -> None:
        self.bar.update(1)
        if show:
            rate = f"{ips:.1f}" if ips >= 1 else f"{ips:.2g}"
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()} | {"img/s": rate})
        if self.csv_file is None:
            return
        row = {"iteration": pos.iteration, "epoch": pos.epoch, "lr": lr, "images_per_s": round(ips, 3),
               **{k: round(v, 6) for k, v in losses.items()}}  # fmt: skip
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=list(row), lineterminator="\n")
            if self.csv_file.tell() == 0:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.csv_file.flush()
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(f"loss/{k}", v, pos.iteration)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.csv_file is not None:
            self.csv_file.close()
        if self.tb is not None:
            self.tb.close()
