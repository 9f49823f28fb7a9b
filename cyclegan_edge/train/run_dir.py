"""A run folder's life outside the training loop: refusing or moving aside an earlier run, one trainer per run
(its lock), and cutting log.csv back to the checkpoint a resumed run restarts from."""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from cyclegan_edge.atomic import OutputBusy, atomic_path, lock_output, unlock_output
from cyclegan_edge.errors import UsageError
from cyclegan_edge.train.config import PATH_SETTINGS, TrainConfig, typed_flag
from cyclegan_edge.train.dist import given_device, launched_as_main

log = logging.getLogger("cyclegan_edge.train")

CHECKPOINT = Path("checkpoints") / "latest.pt"  # in the run folder


def failed_start(run: Path) -> bool:
    """A run folder with nothing but the config.json a start that failed before any iteration wrote (bad sizes,
    bad data): not a run to protect."""
    files = [p for p in run.rglob("*") if p.is_file()]
    return [p.name for p in files] == ["config.json"] and (run / "config.json").is_file()


def holds_input(run: Path, cfg: TrainConfig) -> str:
    """The flag and path of an input (data, a starting generator: PATH_SETTINGS) that is the run folder or lies
    inside it (a run folder inside the data folder is a common layout: runs beside trainA/ and trainB/)."""
    for key in sorted(PATH_SETTINGS):
        given = getattr(cfg, key, "")
        if not given:
            continue
        there, folder = Path(given).resolve(), run.resolve()
        if there == folder or folder in there.parents:
            return f"{typed_flag(cfg, key)} {given}"
    return ""


def inside_training_images(run: Path, cfg: TrainConfig) -> str:
    """The training-image folder (and its flag) that the run folder would lie inside, where the run's samples
    would be read back as training images by the next run or --resume; else ''."""
    if cfg.a_dir or cfg.b_dir:
        folders = [(typed_flag(cfg, key), Path(getattr(cfg, key))) for key in ("a_dir", "b_dir") if getattr(cfg, key)]
    elif cfg.dataroot:
        folders = [(f"--dataroot {cfg.dataroot}", Path(cfg.dataroot) / sub) for sub in ("train", "trainA", "trainB")]
    else:  # no data named: nothing to lie inside
        return ""
    folder = run.resolve()
    for named, images in folders:
        if images.resolve() in folder.parents:
            return f"{images} ({named})"
    return ""


def is_run(folder: Path) -> bool:
    """A run folder: its config.json and what a run's first iteration writes (log.csv) or its checkpoints."""
    return (folder / "config.json").is_file() and ((folder / "log.csv").is_file() or (folder / "checkpoints").is_dir())


def prepare_run_dir(cfg: TrainConfig, move: bool = True) -> str | None:
    """Refuse to write into an existing run unless told how; return what --overwrite moved aside, if anything
    (``move`` False: only refuse; the trainer moves the run once the data has been read)."""
    run = cfg.run_dir
    images = inside_training_images(run, cfg)
    if images:
        fix = ("move the run folder out of them and --resume it there" if cfg.resume
               else "choose an --output outside them")  # fmt: skip
        raise UsageError(f"{run} lies inside the training images {images}: its sample grids would be read as "
                         f"training images; {fix}")  # fmt: skip
    if run.parent.exists() and not run.parent.is_dir():  # FileExistsError's "File exists" named no flag
        raise FileExistsError(f"--output {run.parent}: a file, not a folder (the run goes to OUTPUT/NAME)")
    if run.exists() and not run.is_dir():
        raise FileExistsError(f"{run}: a file, not a run folder: choose another --name or --output")
    if cfg.resume or not run.exists() or not any(run.iterdir()):
        return None
    if failed_start(run):
        (run / "config.json").unlink()
        return f"{run} held only the config.json of a start that failed: starting it again"
    if not is_run(run):  # a folder of the user's (their data, say): never moved or mixed with
        raise FileExistsError(f"{run} exists and holds no run (no config.json and log.csv): choose another --name "
                              "or --output")  # fmt: skip
    inside = holds_input(run, cfg)
    if inside:
        raise UsageError(f"{run} holds this run's input {inside}: choose another --name or --output")
    if not cfg.overwrite:
        if not (run / CHECKPOINT).is_file():
            raise FileExistsError(f"{run} exists, stopped before its first checkpoint: --resume starts it again with "
                                  "its saved settings, --overwrite with this command's")  # fmt: skip
        raise FileExistsError(f"{run} exists: --resume to continue it, --overwrite to start over")
    if not move:
        return None
    aside = run.with_name(f"{run.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    run.rename(aside)
    return f"--overwrite: the earlier run {run} was moved to {aside}"


def log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


@contextlib.contextmanager
def run_lock(cfg: TrainConfig) -> Iterator[None]:
    """One training process per run folder (rank 0 holds ``.NAME.lock`` beside it; the kernel drops it at exit,
    kill -9 included): a second one would resume the same checkpoint, cut the first one's log rows and save over
    its checkpoints."""
    if not launched_as_main():
        yield
        return
    try:
        fd = lock_output(cfg.run_dir, busy="is training this run now; wait for it to end, or give another --name")
    except OutputBusy:
        raise
    except OSError as e:  # it named the lock file beside the run (".NAME.lock"), which the user never typed
        raise OSError(e.errno, e.strerror, str(cfg.run_dir)) from None
    try:
        yield
    finally:
        unlock_output(cfg.run_dir, fd)


def start_run(cfg: TrainConfig) -> None:
    """What every training command does before its trainer: logging on, and rank 0 (under torchrun the
    others follow it) refuses an existing run it was not told what to do with. --overwrite moves it aside only
    in the trainer, once the data has been read: bad data must not cost the old run its place."""
    log_to_stderr()
    given_device(cfg)
    if launched_as_main():
        note = prepare_run_dir(cfg, move=False)
        if note:
            log.warning("%s", note)


def last_logged_iteration(path: Path) -> int:
    """The last iteration log.csv holds (0: none, or no log)."""
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        rows = csv.DictReader(without_nul(f))
        return max((int(r["iteration"]) for r in rows if (r.get("iteration") or "").isdigit()), default=0)


def without_nul(lines: Iterable[str]) -> Iterator[str]:
    """A log's lines less the zeros a power loss can leave in it (csv before Python 3.11 raises on them)."""
    return (line.replace("\0", "") for line in lines)


def truncate_log(path: Path, iteration: int) -> int:
    """Drop rows logged after the checkpoint a resumed run restarts from, and rows that are not whole (a crash
    mid-row, a damaged disk: they failed the resume, or reached the loss plot); return how many were dropped."""
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.reader(without_nul(f)))
    if not rows:
        return 0
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= iteration]
    dropped = len(rows) - len(kept)
    if dropped:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(kept)
    return dropped
