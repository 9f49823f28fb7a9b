"""Make the bundled demo assets from scikit-image's CC0 / public-domain sample photos.

    pip download --no-deps scikit-image && unzip -j scikit_image-*.whl 'skimage/data/*' -d /tmp/skdata
    python scripts/make_demo_assets.py /tmp/skdata

Writes cyclegan_edge/assets/images/*.jpg and cyclegan_edge/assets/demo.mp4: a 6 s, 12 fps,
240x320 clip of slow pans and zooms over the three photos (a stand-in for a camera).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

PHOTOS = {"chelsea.png": "chelsea.jpg", "coffee.png": "coffee.jpg", "rocket.jpg": "rocket.jpg"}
OUT = Path(__file__).resolve().parents[1] / "cyclegan_edge" / "assets"
H, W, FPS, FRAMES_PER_PHOTO = 240, 320, 12, 24


def pan_zoom(img: np.ndarray, t: float) -> np.ndarray:
    """Crop a window that zooms from 100% to 80% of the photo while drifting right."""
    h, w = img.shape[:2]
    scale = 1.0 - 0.2 * t
    ch, cw = int(h * scale), int(min(w, h * scale * W / H))
    y = int((h - ch) * 0.5)
    x = int((w - cw) * t)
    return cv2.resize(img[y : y + ch, x : x + cw], (W, H), interpolation=cv2.INTER_AREA)


def main(src: str) -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    photos = []
    for name, out_name in PHOTOS.items():
        img = cv2.imread(str(Path(src) / name), cv2.IMREAD_COLOR)
        cv2.imwrite(str(OUT / "images" / out_name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        photos.append(img)
    writer = cv2.VideoWriter(str(OUT / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for img in photos:
        for i in range(FRAMES_PER_PHOTO):
            writer.write(pan_zoom(img, i / (FRAMES_PER_PHOTO - 1)))
    writer.release()


if __name__ == "__main__":
    main(sys.argv[1])
