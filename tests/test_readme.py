"""The README's first commands work, and the runtime needs no torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import ONE_THREAD, ROOT
from cyclegan_edge.runtime.bundled import DEFAULT_DEMO, DEMO_MODELS

DEMO_STEM = DEMO_MODELS[DEFAULT_DEMO]



def readme_commands() -> list[str]:
    return re.findall(r"^    (python3 -m venv .*)$", (ROOT / "README.md").read_text(), flags=re.M)


def test_readme_starts_with_demo_and_test_commands() -> None:
    demo, tests = readme_commands()[:2]
    assert demo.endswith("python -m cyclegan_edge.runtime --demo") and "torch" not in demo
    assert tests.endswith("python -m pytest -q -n logical --dist worksteal") and "torch==2.13.0" in tests
    head = (ROOT / "README.md").read_text().split("## ")[0]
    assert demo in head and tests in head


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"sed -n '(.*)' README.md", ci).group(1)  # type: ignore[union-attr]
    out = subprocess.run(["sed", "-n", pattern, "README.md"], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.splitlines()[0] == readme_commands()[1]


def test_demo_runs_without_torch(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is blocked: the runtime must not need it')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **ONE_THREAD}
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", "--demo", "--headless"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert re.search(rf"120 frames -> cyclegan_edge_demo.mp4 at [\d.]+ FPS \(model {DEMO_STEM}(\.int8)?\.onnx \(bundled; --model MODEL for another\), "
                     r"(openvino:CPU:(f32|bf16)\+int8|onnxruntime:CPUExecutionProvider)\)", r.stdout)
    cap = cv2.VideoCapture(str(tmp_path / "cyclegan_edge_demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 120 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 1280
    cap.release()
    av = pytest.importorskip("av")  # [runtime] brings PyAV on x86-64: H.264 with the clip's sound kept
    with av.open(str(tmp_path / "cyclegan_edge_demo.mp4")) as out:
        assert out.streams.video[0].codec_context.name == "h264" and len(out.streams.audio) == 1
        assert abs(float(out.duration) / 1e6 - 4.0) < 0.1
