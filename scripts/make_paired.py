"""Build a paired edges -> photo task (pix2pix's edges2* kind) from the Yosemite photos, reproducibly.

    python scripts/make_paired.py --out data/edges2yosemite --count 400 --test-count 50

A is the photo's Canny edges at fixed thresholds, dilated, black lines on white; B is the photo. Each pair
is one A|B side-by-side PNG (2*SIZE x SIZE: the reference pix2pix's aligned format) in OUT/train and OUT/test;
OUT/testA holds the test pairs' A sides alone (SIZE x SIZE edge images: what the trained model takes).
Photos come from SOURCE/trainA + trainB (train) and testA + testB (test), summer and winter alike, picked
evenly over the sorted file names: the same flags give the same files, byte for byte.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import list_files
from cyclegan_edge.imaging.io import ImageReadError, read_image, write_image

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "summer2winter_yosemite"
CANNY_LOW, CANNY_HIGH = 100, 200  # on the 3x3-blurred grey photo: outlines and strong texture, not noise


def edges(photo: np.ndarray) -> np.ndarray:
    """Black 2-pixel edge lines on white, BGR uint8."""
    grey = cv2().GaussianBlur(cv2().cvtColor(photo, cv2().COLOR_BGR2GRAY), (3, 3), 0)
    lines = cv2().dilate(cv2().Canny(grey, CANNY_LOW, CANNY_HIGH), np.ones((2, 2), np.uint8))
    return cv2().cvtColor(255 - lines, cv2().COLOR_GRAY2BGR)


def pair(photo: np.ndarray, size: int) -> np.ndarray:
    h, w = photo.shape[:2]
    side = min(h, w)  # centre square, then SIZE x SIZE
    square = photo[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    b = cv2().resize(square, (size, size), interpolation=cv2().INTER_AREA) if side != size else square
    return np.hstack([edges(b), b])


def picked(folders: list[Path], count: int) -> list[Path]:
    files = [p for folder in folders for p in list_files([folder])]
    if count and count < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]
    return files


def write_split(folders: list[Path], out: Path, count: int, size: int, a_out: Path | None = None) -> int:
    """Pairs into ``out``; their A sides alone into ``a_out`` when given."""
    written = 0
    for p in picked(folders, count):
        try:
            photo = read_image(p)
        except ImageReadError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{p.parent.name}_{p.stem}") + ".png"
        ab = pair(photo, size)
        write_image(out / name, ab)
        if a_out is not None:
            write_image(a_out / name, ab[:, :size])
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with trainA/trainB/testA/testB photos")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT/train, OUT/test and OUT/testA")
    ap.add_argument("--count", type=int, default=400, help="training pairs (0 = every training photo)")
    ap.add_argument("--test-count", type=int, default=50, help="test pairs (0 = every test photo)")
    ap.add_argument("--size", type=int, default=256, help="each side of a pair is SIZE x SIZE")
    args = ap.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: {args.source}: no such folder", file=sys.stderr)
        return 2
    for split, count in (("train", args.count), ("test", args.test_count)):
        folders = [args.source / f"{split}{d}" for d in "AB" if (args.source / f"{split}{d}").is_dir()]
        if not folders:
            print(f"error: {args.source}: no {split}A/ or {split}B/", file=sys.stderr)
            return 2
        a_out = args.out / "testA" if split == "test" else None
        n = write_split(folders, args.out / split, count, args.size, a_out)
        print(f"{args.out / split}: {n} pairs of {args.size}x{args.size} (A: edges | B: photo)")
        if a_out is not None:
            print(f"{a_out}: their A sides alone (edges: the model's input)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
