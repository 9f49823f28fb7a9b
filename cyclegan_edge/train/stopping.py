"""How a training run stops: Ctrl-C and SIGTERM in the trainer (save, then exit), none in its data workers."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from tqdm import tqdm

PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent ends


def start_worker(_worker_id: int, trainer_pid: int = 0) -> None:
    """In a DataLoader worker: leave Ctrl-C and SIGTERM to the main process, which saves a checkpoint and then
    stops the workers (`timeout`, Slurm and a terminal signal the whole process group); and end with it. A worker
    outlives a killed trainer by up to 5 s (its watchdog's period) holding the run's lock, which it inherited: a
    restart (systemd, a Slurm requeue) right after kill -9 was refused as "another process is training". A
    trainer that died before the death signal was asked for (``trainer_pid`` is no longer the parent) sends none."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if trainer_pid and os.getppid() != trainer_pid:
            os.kill(os.getpid(), signal.SIGKILL)


class Aborted(KeyboardInterrupt):
    """A second Ctrl-C: stop at once, saving nothing (the iteration under way is half applied)."""


class StopFlag:
    """First Ctrl-C/SIGTERM: finish the iteration, save, exit. A second Ctrl-C: stop at once (``Aborted``).

    One stop often arrives twice: a terminal's Ctrl-C or Slurm's scancel reaches every process of the job, and
    torchrun forwards its own copy to each rank. So the same signal again within ``MERGE_S`` is the same stop,
    and SIGTERM never aborts (schedulers repeat it, then send SIGKILL)."""

    MERGE_S = 0.5

    def __init__(self, announce: bool = True) -> None:
        self.announce = announce  # under torchrun rank 0 alone says it: one line, not one per process
        self.requested = False
        self.signum = 0  # the first one's: the exit status says SIGTERM (143) from Ctrl-C (130)
        self.at = 0.0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            repeat = signum == self.signum and time.monotonic() - self.at < self.MERGE_S
            if signum == signal.SIGTERM or repeat:
                return
            raise Aborted
        self.requested, self.signum, self.at = True, signum, time.monotonic()
        if self.announce and signum == signal.SIGTERM:  # never aborts: no "again" to offer
            tqdm.write("SIGTERM: stopping after this iteration, once a checkpoint is saved")
        elif self.announce:
            tqdm.write("stop requested: saving a checkpoint after this iteration (Ctrl-C again: stop at once, saving "
                       "nothing)")
