"""Unpacks what benchmarks/gpu/lease.sh brought back: the season.tgz.part-* files into DEST, each run's
float16 generator files (``G_*.pth.fp16``, halved to fit the way back) restored as float32 ``G_*.pth``.

    python benchmarks/gpu/lease_unpack.py /work/.device/1 ~/runs/gpu-lease-1
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import Any

import torch


def to_fp32(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.dtype == torch.float16:
        return x.float()
    if isinstance(x, dict):
        return {k: to_fp32(v) for k, v in x.items()}
    return x


def main(argv: list[str]) -> int:
    src, dest = Path(argv[0]), Path(argv[1])
    parts = sorted(src.glob("season.tgz.part-*"))
    if not parts:
        print(f"error: no season.tgz.part-* in {src}", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    for half in sorted(dest.glob("*/G_*.pth.fp16")):
        torch.save(to_fp32(torch.load(half, map_location="cpu", weights_only=True)), half.with_suffix(""))
        half.unlink()
        print(half.with_suffix(""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
