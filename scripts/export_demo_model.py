"""Package a trained run's A->B generator as the runtime's bundled demo model.

    python scripts/export_demo_model.py runs/demo_photo2monet [--data ../shared/data/monet2photo]

Writes cyclegan_edge/assets/photo2monet.pth (our generator format) and photo2monet.onnx
(opset 17, checked against PyTorch), reports the cycle-reconstruction L1 on the test split
(photo -> Monet -> photo and Monet -> photo -> Monet, at 256x256), and draws
docs/demo_before_after.png from the bundled photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cyclegan_edge.export.onnx_export import export_onnx
from cyclegan_edge.export.report import parity_vs_torch
from cyclegan_edge.imaging.io import load_test_images
from cyclegan_edge.imaging.frames import frame_to_tensor, tensor_to_frame
from cyclegan_edge.imaging.files import list_files
from cyclegan_edge.imaging.io import read_image, write_image
from cyclegan_edge.models import ResnetGenerator, load_generator, save_generator

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "cyclegan_edge" / "assets"


def cycle_l1(forward: ResnetGenerator, backward: ResnetGenerator, folder: Path, limit: int = 60) -> float:
    """Mean |x - backward(forward(x))| in [-1, 1] units over the folder's images."""
    errs = []
    with torch.no_grad():
        for p in list_files([folder])[:limit]:
            x = torch.from_numpy(frame_to_tensor(read_image(p)))
            errs.append(float((backward(forward(x)) - x).abs().mean()))
    return float(np.mean(errs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "monet2photo")
    args = ap.parse_args()
    ckpt = args.run_dir / "checkpoints" / "latest.pt"
    g = load_generator(ckpt, direction="A->B")
    f = load_generator(ckpt, direction="B->A")
    meta = {**g.meta, "name": "photo2monet", "dataset": "monet2photo (A: photos from trainB, B: Monet from trainA)"}
    pth = save_generator(ASSETS / "photo2monet.pth", g.model, meta)
    gen = load_generator(pth)
    onnx_path = export_onnx(gen, ASSETS / "photo2monet.onnx")
    report = parity_vs_torch(gen.model, onnx_path, load_test_images(ASSETS / "images", 3))
    print(f"{pth} ({pth.stat().st_size / 1e6:.2f} MB), {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB); "
          f"iterations {gen.meta.get('iterations')}; ONNX parity max abs {report['max_abs']:.1e}")  # fmt: skip
    if args.data.is_dir():
        photo = cycle_l1(g.model, f.model, args.data / "testB")
        monet = cycle_l1(f.model, g.model, args.data / "testA")
        print(f"cycle L1 on the test split ([-1,1] units, 60 images each): photo->Monet->photo {photo:.4f}, "
              f"Monet->photo->Monet {monet:.4f}")  # fmt: skip
    rows = []
    with torch.no_grad():
        for p in sorted((ASSETS / "images").glob("*.jpg")):
            img = read_image(p)
            scale = 256 / img.shape[0]
            import cv2

            img = cv2.resize(img, (int(round(img.shape[1] * scale / 4)) * 4, 256), interpolation=cv2.INTER_AREA)
            out = tensor_to_frame(gen.model(torch.from_numpy(frame_to_tensor(img))).numpy(), img.shape[:2])
            rows.append(np.hstack([img, np.full((256, 8, 3), 255, np.uint8), out]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    print(write_image(ROOT / "docs" / "demo_before_after.png", np.vstack(rows)))


if __name__ == "__main__":
    main()
