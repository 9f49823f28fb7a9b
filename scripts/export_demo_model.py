"""Package a trained run's A->B generator as the runtime's bundled demo model.

    python scripts/export_demo_model.py runs/demo_photo2monet

Writes cyclegan_edge/assets/photo2monet.pth (our generator format, from checkpoints/latest.pt)
and photo2monet.onnx (opset 17, checked against PyTorch on the bundled images).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cyclegan_edge.export.onnx_export import export_onnx
from cyclegan_edge.export.report import load_test_images, parity_vs_torch
from cyclegan_edge.models import load_generator, save_generator

ASSETS = Path(__file__).resolve().parents[1] / "cyclegan_edge" / "assets"


def main(run_dir: str) -> None:
    gen = load_generator(Path(run_dir) / "checkpoints" / "latest.pt", direction="A->B")
    meta = {**gen.meta, "name": "photo2monet", "dataset": "monet2photo (A: photos trainB, B: Monet trainA)"}
    pth = save_generator(ASSETS / "photo2monet.pth", gen.model, meta)
    gen = load_generator(pth)
    onnx_path = export_onnx(gen, ASSETS / "photo2monet.onnx")
    report = parity_vs_torch(gen.model, onnx_path, load_test_images(ASSETS / "images", 3))
    print(f"{pth} ({pth.stat().st_size / 1e6:.2f} MB), {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB); "
          f"iterations {gen.meta.get('iterations')}; ONNX parity max abs {report['max_abs']:.1e}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
