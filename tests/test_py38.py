"""The edge side on Python 3.8, JetPack 5's Python: a fresh venv installs the package with the
[runtime,bench,engine,opencv-headless] extras and runs the demo, a benchmark and the engine-only
export path. Training and export from a checkpoint need Python 3.10 and say so in one line."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ONE_THREAD, ROOT

from cyclegan_edge import ASSETS_DIR


def python38() -> str | None:
    candidates = [os.environ.get("CYCLEGAN_EDGE_PYTHON38")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    candidates.append(shutil.which("python3.8"))  # may be a pyenv shim that refuses: checked below
    for c in filter(None, candidates):
        ok = subprocess.run([c, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"], capture_output=True)
        if ok.returncode == 0:
            return c
    return None


PY38 = python38()


@pytest.mark.skipif(PY38 is None, reason="no Python 3.8 interpreter here (set CYCLEGAN_EDGE_PYTHON38 to one)")
def test_edge_commands_work_on_python38(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so that building the wheel leaves nothing in the checkout
    shutil.copytree(ROOT / "cyclegan_edge", src / "cyclegan_edge", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([str(PY38), "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", f"{src}[runtime,bench,engine,opencv-headless]"],
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(ONE_THREAD)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([py, "-m", *args], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)

    r = run("cyclegan_edge.runtime", "--demo", "--max-frames", "4", "--headless", "-o", "demo.mp4")
    assert r.returncode == 0 and "4 frames -> demo.mp4" in r.stdout, r.stderr[-2000:]
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()

    model = str(ASSETS_DIR / "photo2monet.onnx")
    r = run("cyclegan_edge.runtime", "--input", str(ASSETS_DIR / "images"), "--output", "out",
            "--engine", model, "--size", "64")  # fmt: skip
    assert r.returncode == 0 and "3 of 3 files ok" in r.stdout, r.stderr[-2000:]
    r = run("cyclegan_edge.bench", model, "--variants", "onnxruntime-fp32", "--sizes", "64", "--iters", "2",
            "--warmup", "1", "--out", "bench")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "report.json").read_text())
    assert report["machine"]["python"].startswith("3.8") and len(report["results"]) == 1
    r = run("cyclegan_edge.export", model, "--print-trtexec")  # the engine-only path: no torch on the device
    # a comment line names the TensorRT version the flags are for, then the command
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("trtexec --onnx="), r.stderr[-2000:]
    r = run("cyclegan_edge.train", "--dataroot", "x")
    assert r.returncode != 0 and "needs Python 3.10" in r.stderr
    assert sys.version_info >= (3, 10)  # this suite itself runs on the development Python
