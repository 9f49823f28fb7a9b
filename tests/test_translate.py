from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from cyclegan_edge.imaging.io import read_image


def test_translate_folder_and_files(compressed_g_path: Path, horse_paths: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "horses"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(horse_paths[0], folder / "a.jpg")
    shutil.copy(horse_paths[1], folder / "sub" / "b.jpg")
    (folder / "broken.jpg").write_bytes(horse_paths[2].read_bytes()[:200])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.translate", str(compressed_g_path), str(folder),
                        str(horse_paths[3]), "--output", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stderr  # one unreadable file
    assert "skipped: " in r.stderr and "broken.jpg: not a decodable image" in r.stderr
    assert "3 of 4 images written" in r.stdout
    for src, dst in ((horse_paths[0], out / "horses" / "a.png"), (horse_paths[1], out / "horses" / "sub" / "b.png"),
                     (horse_paths[3], out / (horse_paths[3].stem + ".png"))):  # fmt: skip
        before, after = read_image(src), read_image(dst)
        assert after.shape == before.shape
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 5  # translated, not copied
