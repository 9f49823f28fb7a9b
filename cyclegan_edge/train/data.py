"""Unpaired (CycleGAN) and paired (pix2pix) image data: file discovery with corrupt-file skipping,
reference preprocessing.

Every random choice for sample ``i`` of epoch ``e`` (crop, flip, which B image) comes from a
generator seeded by ``(seed, e, i)``, so a resumed run sees exactly the data an uninterrupted
one would, whatever the number of DataLoader workers. A pair gets the same crop and flip on both sides.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import MULTIPLE, frame_to_tensor
from cyclegan_edge.imaging.files import DataError, folder_image_files
from cyclegan_edge.imaging.io import decoded_images, read_image
from cyclegan_edge.progress import progress_bar
from cyclegan_edge.train.config import TrainConfig, min_train_side

log = logging.getLogger("cyclegan_edge.train")


def domain_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    if cfg.a_dir or cfg.b_dir:
        if not (cfg.a_dir and cfg.b_dir):
            raise DataError("give both --a and --b (or --dataroot)")
        return Path(cfg.a_dir), Path(cfg.b_dir)
    if not cfg.dataroot:
        raise DataError("no data: give --dataroot ROOT (with trainA/ and trainB/) or --a DIR --b DIR")
    return Path(cfg.dataroot) / "trainA", Path(cfg.dataroot) / "trainB"


MIN_SIDE = 5  # px: a smaller image is named and skipped, as the runtime's are (a 3x3 one trained, scaled up, unsaid)


def scan_images(folder: Path, limit: int = 0, show_progress: bool = True) -> list[Path]:
    """Decodable images under ``folder``; each bad file is skipped with one warning."""
    return [p for p, _ in scan_sizes(folder, limit, show_progress)]


def scan_sizes(folder: Path, limit: int = 0, show_progress: bool = True) -> list[tuple[Path, tuple[int, int]]]:
    """scan_images, with each image's height and width."""
    candidates = folder_image_files(folder)  # said before a progress bar over nothing
    if limit:
        candidates = candidates[:limit]
    bar = progress_bar(candidates, desc=f"checking {folder.name}", unit="img", disable=not show_progress, leave=False)
    # the crop or --preprocess none decides what a small image becomes (an 8 px one trains)
    good = [(p, (int(img.shape[0]), int(img.shape[1]))) for p, img in decoded_images(bar, folder, min_side=MIN_SIDE)]
    if not good:
        raise DataError(f"{folder}: no usable images (its {len(candidates)} image files are all unreadable or under "
                        f"{MIN_SIDE} px a side)")
    return good


def same_sizes_to_batch(sized: list[tuple[Path, tuple[int, int]]], cfg: TrainConfig, multiple: int = MULTIPLE) -> None:
    """--preprocess none / scale_width keep each image's size (scale_width: its aspect): a batch of several needs one
    size for all after ``preprocess``. DataError naming two that differ."""
    if cfg.batch_size == 1 or cfg.preprocess not in ("none", "scale_width") or not sized:
        return
    trained = [(p, hw, preprocessed_size(hw, cfg, multiple)) for p, hw in sized]
    first, hw, size = trained[0]
    other = next((t for t in trained if t[2] != size), None)
    if other is not None:
        kept = "each image's size" if cfg.preprocess == "none" else f"each image's aspect ({cfg.load_size} px wide)"
        (name, (h, w), (th, tw)) = other[0].name, other[1], other[2]
        raise DataError(f"--preprocess {cfg.preprocess} keeps {kept}, and --batch-size {cfg.batch_size} batches images "
                        f"of one size: {first.name} is {hw[1]}x{hw[0]} (trained at {size[1]}x{size[0]}), {name} "
                        f"{w}x{h} ({tw}x{th}); use --batch-size 1 or --preprocess resize_and_crop")  # fmt: skip


def preprocessed_size(hw: tuple[int, int], cfg: TrainConfig, multiple: int = MULTIPLE) -> tuple[int, int]:
    """The (height, width) ``preprocess`` makes of an image of ``hw`` under --preprocess none or scale_width."""
    if cfg.preprocess == "scale_width":
        hw = scale_width_size(hw, cfg)
    return trimmed_size(at_least_size(hw, min_train_side(cfg)), multiple)


def scale_width_size(hw: tuple[int, int], cfg: TrainConfig) -> tuple[int, int]:
    """--preprocess scale_width: --load-size wide, the aspect kept, at least --crop-size high."""
    return max(int(round(cfg.load_size * hw[0] / hw[1])), cfg.crop_size), cfg.load_size


def at_least_size(hw: tuple[int, int], side: int) -> tuple[int, int]:
    """(height, width) scaled up, aspect kept, until the shorter side is ``side``; as it is when it already is."""
    h, w = hw
    if min(h, w) >= side:
        return hw
    s = side / min(h, w)
    return max(side, round(h * s)), max(side, round(w * s))


def trimmed_size(hw: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(height, width) cut down to multiples of ``multiple`` (the generator's size multiple), at least one."""
    return max(multiple, hw[0] - hw[0] % multiple), max(multiple, hw[1] - hw[1] % multiple)


def side_by_side(folder: Path, limit: int = 0, show_progress: bool = True) -> list[tuple[Path, tuple[int, int]]]:
    """The A|B images of ``folder`` and their sizes; one warning names those that are not two squares side by side (a photo that
    is no pair is cut in half all the same), as the reference's aligned datasets all are."""
    sized = scan_sizes(folder, limit, show_progress)
    odd = [(p, hw) for p, hw in sized if hw[1] != 2 * hw[0]]
    if odd:
        p, (h, w) = odd[0]
        log.warning("%s: %d of %d images are not twice as wide as high (e.g. %s, %dx%d); each is cut in half into "
                    "A (left) and B (right) all the same", folder, len(odd), len(sized), p.name, w, h)  # fmt: skip
    return sized


def at_least(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` scaled up (bicubic, aspect kept) until its shorter side is ``side``; as it is when it already is."""
    hw = img.shape[:2]
    h, w = at_least_size((hw[0], hw[1]), side)
    return img if (h, w) == hw else cv2().resize(img, (w, h), interpolation=cv2().INTER_CUBIC)


def preprocess(img: np.ndarray, cfg: TrainConfig, rng: np.random.Generator, multiple: int = MULTIPLE) -> np.ndarray:
    """The reference implementation's transforms on a BGR uint8 image; uncropped sizes are cut down to
    multiples of ``multiple`` (the generator's size multiple)."""
    resize = cv2().resize
    if cfg.preprocess == "resize_and_crop":
        img = resize(img, (cfg.load_size, cfg.load_size), interpolation=cv2().INTER_CUBIC)
    elif cfg.preprocess == "scale_width":
        h, w = scale_width_size((img.shape[0], img.shape[1]), cfg)
        img = resize(img, (w, h), interpolation=cv2().INTER_CUBIC)
    if cfg.preprocess in ("resize_and_crop", "crop"):
        img = at_least(img, cfg.crop_size)
        h, w = img.shape[:2]
        y = int(rng.integers(0, h - cfg.crop_size + 1))
        x = int(rng.integers(0, w - cfg.crop_size + 1))
        img = img[y : y + cfg.crop_size, x : x + cfg.crop_size]
    else:  # scale_width / none: at least the shortest side training takes, both sides multiples of the generator's
        img = at_least(img, min_train_side(cfg))
        h, w = trimmed_size((img.shape[0], img.shape[1]), multiple)
        img = img[:h, :w]
    if cfg.flip and rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


class UnpairedDataset(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, a_files: list[Path], b_files: list[Path], cfg: TrainConfig) -> None:
        self.a_files, self.b_files, self.cfg = a_files, b_files, cfg
        self.epoch = 0

    def __len__(self) -> int:
        return max(len(self.a_files), len(self.b_files))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.cfg.seed, self.epoch, index))
        a = read_image(self.a_files[index % len(self.a_files)])
        b = read_image(self.b_files[int(rng.integers(len(self.b_files)))])  # unaligned: B at random
        a, b = preprocess(a, self.cfg, rng), preprocess(b, self.cfg, rng)
        return {"A": torch.from_numpy(frame_to_tensor(a)[0]), "B": torch.from_numpy(frame_to_tensor(b)[0])}


def paired_files(cfg: TrainConfig, show_progress: bool = True,
                 multiple: int = MULTIPLE) -> list[tuple[Path, Path | None]]:  # fmt: skip
    """Aligned pairs as (A, B) files, or (AB, None) for one A|B side-by-side image (the reference's aligned
    format, ``DATAROOT/train``); two folders pair files of the same name stem (``--a``/``--b``, or
    ``DATAROOT/trainA`` + ``trainB``)."""
    root = Path(cfg.dataroot) if cfg.dataroot else None
    if root is not None and not (cfg.a_dir or cfg.b_dir) and (root / "train").is_dir():
        sized = side_by_side(root / "train", cfg.max_images, show_progress)
        same_sizes_to_batch([(p, (h, w // 2)) for p, (h, w) in sized], cfg, multiple)  # A's half: what trains
        return [(p, None) for p, _ in sized]
    if root is not None and not (root / "trainA").is_dir() and not (cfg.a_dir or cfg.b_dir):
        raise DataError(f"{root}: no train/ (A|B side-by-side images) and no trainA/ + trainB/ folders")
    a_dir, b_dir = domain_dirs(cfg)
    a_by_stem, b_by_stem = (by_stem(scan_sizes(d, 0, show_progress), d) for d in (a_dir, b_dir))
    stems = [s for s in a_by_stem if s in b_by_stem]
    if not stems:
        raise DataError(f"{a_dir} and {b_dir}: no file names in common (pairs are matched by name, extension aside)")
    alone = sorted([a_by_stem[s][0] for s in a_by_stem.keys() - b_by_stem.keys()] +
                   [b_by_stem[s][0] for s in b_by_stem.keys() - a_by_stem.keys()])  # fmt: skip
    if alone:
        log.warning("%s, %s: %d image%s without a partner of the same name, skipped (first: %s)", a_dir, b_dir,
                    len(alone), "" if len(alone) == 1 else "s", alone[0])  # fmt: skip
    stems = stems[: cfg.max_images or None]
    skewed = [s for s in stems if abs(aspect(a_by_stem[s][1]) / aspect(b_by_stem[s][1]) - 1) > 0.01]
    if skewed:
        (a, (ah, aw)), (b, (bh, bw)) = a_by_stem[skewed[0]], b_by_stem[skewed[0]]
        log.warning("%d of %d pairs differ in shape (first: %s %dx%d, %s %dx%d): each side is scaled on its own, so "
                    "they no longer line up pixel for pixel", len(skewed), len(stems), a, aw, ah, b, bw,
                    bh)  # fmt: skip
    same_sizes_to_batch([a_by_stem[s] for s in stems] + [b_by_stem[s] for s in stems], cfg, multiple)
    return [(a_by_stem[s][0], b_by_stem[s][0]) for s in stems]


def by_stem(files: list[tuple[Path, tuple[int, int]]], folder: Path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Images by name stem (how pairs are matched); the first of files sharing a stem (x.jpg, x.png) is kept, and
    one warning names them: which is meant is the user's to say."""
    found: dict[str, tuple[Path, tuple[int, int]]] = {}
    twins = []
    for path, size in files:
        if path.stem in found:
            twins.append((found[path.stem][0], path))
        else:
            found[path.stem] = (path, size)
    if twins:
        log.warning("%s: %d %s a name with another (first: %s and %s): pairs are matched by name; the first of "
                    "each is used", folder, len(twins), "file shares" if len(twins) == 1 else "files share",
                    twins[0][0].relative_to(folder), twins[0][1].relative_to(folder))  # fmt: skip
    return found


def aspect(size: tuple[int, int]) -> float:
    return size[1] / size[0]


class PairedDataset(Dataset[dict[str, torch.Tensor]]):
    """Aligned pairs, ``{"A": input, "B": target}`` (``b_to_a`` swaps the sides, the reference's BtoA)."""

    def __init__(self, pairs: list[tuple[Path, Path | None]], cfg: TrainConfig, multiple: int = MULTIPLE,
                 b_to_a: bool = False) -> None:  # fmt: skip
        self.pairs, self.cfg, self.multiple, self.b_to_a = pairs, cfg, multiple, b_to_a
        self.a_files = [a for a, _ in pairs]  # for counts in logs: one file per side
        self.b_files = [b or a for a, b in pairs]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        first, second = self.pairs[index]
        if second is None:
            ab = read_image(first)
            half = ab.shape[1] // 2
            a, b = ab[:, :half], ab[:, half:]
        else:
            a, b = read_image(first), read_image(second)
        if self.b_to_a:
            a, b = b, a
        # Two generators in the same state: the same crop and flip on both sides of the pair.
        key = (self.cfg.seed, self.epoch, index)
        a = preprocess(a, self.cfg, np.random.default_rng(key), self.multiple)
        b = preprocess(b, self.cfg, np.random.default_rng(key), self.multiple)
        return {"A": torch.from_numpy(frame_to_tensor(a)[0]), "B": torch.from_numpy(frame_to_tensor(b)[0])}


class ResumableSampler(Sampler[int]):
    """DistributedSampler (a world of 1 without torchrun) that can start mid-epoch."""

    def __init__(self, dataset: UnpairedDataset | PairedDataset, world: int, rank: int, seed: int, batch_size: int) -> None:
        self.inner: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.dataset, self.batch_size, self.skip_batches = dataset, batch_size, 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.inner.set_epoch(epoch)
        self.dataset.epoch = epoch
        self.skip_batches = batch

    def __iter__(self) -> Iterator[int]:
        indices = list(self.inner)
        return iter(indices[self.skip_batches * self.batch_size :])

    def __len__(self) -> int:
        return len(self.inner) - self.skip_batches * self.batch_size

    def batches_per_epoch(self) -> int:
        return len(self.inner) // self.batch_size


@contextlib.contextmanager
def loaded_batches(loader: DataLoader) -> Iterator[Iterator[Any]]:
    """``loader``'s batches, its worker processes stopped however the loop ends: after an error the iterator
    lived on in the traceback, and so did the workers (they ignore SIGTERM, see trainer.start_worker), so the
    process hung at exit for good. An error raised in a worker is re-raised with its own message, not "Caught
    ImageReadError in DataLoader worker process 0." (which named no file)."""
    batches = iter(loader)
    try:
        yield batches
    except Exception as e:
        original = worker_error(e)
        if original is None:
            raise
        raise original from None
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # what the iterator's own __del__ calls
        if shutdown is not None:
            shutdown()


def worker_error(e: Exception) -> Exception | None:
    """The error a DataLoader worker raised, as its own type with its own message, from the one torch re-raises in
    the main process ("Caught X in DataLoader worker process N.\nOriginal Traceback ...\nmodule.X: message");
    None for any other error."""
    lines = str(e).strip().splitlines()
    if len(lines) < 2 or not (lines[0].startswith("Caught ") and "DataLoader worker process" in lines[0]):
        return None
    name = type(e).__name__
    head, sep, message = lines[-1].partition(": ")
    if not (sep and (head == name or head.endswith("." + name))):
        return None
    try:
        return type(e)(message)
    except Exception:  # an error type that takes other arguments: its message all the same
        return RuntimeError(f"{name}: {message}")
