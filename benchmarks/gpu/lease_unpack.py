"""Unpacks what benchmarks/gpu/lease.sh brought back: the season.tgz.part-* files into DEST, each run's
float16 generator files (``G_*.pth.fp16``, halved to fit the way back) restored as float32 ``G_*.pth``.

    python benchmarks/gpu/lease_unpack.py /work/.device/1 ~/runs/gpu-lease-1
    python benchmarks/gpu/lease_unpack.py --halve RUN_DIR PACK_DIR    # on the GPU machine (lease.sh): the halving
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import Any

import torch


def cast(x: Any, src: torch.dtype, dst: torch.dtype) -> Any:
    """``x`` (a generator file's payload) with every ``src`` tensor in it cast to ``dst``."""
    if isinstance(x, torch.Tensor) and x.dtype == src:
        return x.to(dst)
    if isinstance(x, dict):
        return {k: cast(v, src, dst) for k, v in x.items()}
    return x


def halve(run: Path, pack: Path) -> int:
    for name in ("G_A2B.pth", "G_B2A.pth"):
        if (run / name).is_file():
            payload = torch.load(run / name, map_location="cpu", weights_only=True)
            torch.save(cast(payload, torch.float32, torch.float16), pack / (name + ".fp16"))
            print(name, "packed")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--halve"]:
        return halve(Path(argv[1]), Path(argv[2]))
    src, dest = Path(argv[0]), Path(argv[1])
    parts = sorted(src.glob("season.tgz.part-*"))
    if not parts:
        print(f"error: no season.tgz.part-* in {src}", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.8.17+/3.12
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    for half in sorted(dest.glob("*/G_*.pth.fp16")):
        payload = torch.load(half, map_location="cpu", weights_only=True)
        torch.save(cast(payload, torch.float16, torch.float32), half.with_suffix(""))
        half.unlink()
        print(half.with_suffix(""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
