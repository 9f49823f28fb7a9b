"""Translate image files with any generator: ``python -m cyclegan_edge.translate MODEL INPUT... -o DIR``.

Folders are searched recursively; outputs keep their relative paths, as PNG. Unreadable
files are skipped with one warning each; the exit code is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from cyclegan_edge.imaging.io import list_files, relative_to
from cyclegan_edge.runtime.backends import BackendError, BackendOptions, open_backend
from cyclegan_edge.runtime.batch import convert_image


def output_path(src: Path, roots: list[Path], out_dir: Path) -> Path:
    for root in roots:
        below = relative_to(src, root) if root.is_dir() else None
        if below is not None:
            return out_dir / root.name / below.with_suffix(".png")
    return out_dir / (src.stem + ".png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan_edge.translate", description=__doc__.split("\n")[0])
    ap.add_argument("model", help="generator checkpoint (.pth/.pt), ONNX model or TensorRT engine")
    ap.add_argument("inputs", nargs="+", help="image files or folders")
    ap.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    ap.add_argument("--device", default="auto", help="PyTorch device: auto, cpu, cuda")
    args = ap.parse_args(argv)

    try:
        backend = open_backend(args.model, BackendOptions(device=args.device))
        files = list_files(args.inputs)
    except (BackendError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: no images found in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    roots = [Path(p) for p in args.inputs]
    failed = 0
    for src in tqdm(files, desc="translate", unit="img"):
        result = convert_image(src, output_path(src, roots, args.output), backend)
        if result.failed:
            tqdm.write(f"skipped: {src}: {result.status[len('failed: '):] if result.status.startswith('failed: ') else result.status}", file=sys.stderr)
            failed += 1
    print(f"{len(files) - failed} of {len(files)} images written to {args.output} ({backend.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
