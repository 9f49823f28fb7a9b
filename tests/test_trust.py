"""Issue 11, items 4-24: no lost work, no tracebacks, honest progress and reports.

Real files and real subprocesses. The command-line cases run concurrently, once per module (the ``ran``
fixture); each item's test then checks the exit status, the one ``error:`` line, and that files that were
there before are untouched (bytes and mtime). Disk-full is real: RLIMIT_FSIZE in the child.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import ONE_THREAD, ROOT, as_user, interrupt_when
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.imaging.files import OUTPUT_MARKER
from cyclegan_edge.runtime.bundled import DEFAULT_DEMO, DEMO_MODELS

ONNX = ASSETS_DIR / "photo2monet.onnx"
PTH = ASSETS_DIR / "photo2monet.pth"
ENV = {**os.environ, **ONE_THREAD}
ENV.pop("DISPLAY", None)
ENV.pop("CYCLEGAN_EDGE_TRACEBACK", None)


# ---- the workspace: small real files ---------------------------------------------------------------------
def photo(hw: tuple[int, int], name: str = "coffee.jpg") -> np.ndarray:
    img = cv2.imread(str(ASSETS_DIR / "images" / name))
    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def write_clip(path: Path, frames: int = 6, hw: tuple[int, int] = (48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (hw[1], hw[0]))
    for i in range(frames):
        w.write(np.roll(photo(hw), 4 * i, axis=1))
    w.release()
    return path


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG with zeros over part of its entropy-coded data: libjpeg decodes it, partly grey, and warns."""
    ok, buf = cv2.imencode(".jpg", photo((96, 128)))
    data = bytearray(buf.tobytes())
    mid = len(data) // 2
    data[mid : mid + 400] = bytes(400)
    path.write_bytes(bytes(data))
    return path


def nan_onnx(path: Path) -> Path:
    """The bundled generator with every conv weight NaN (a diverged training run)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(ONNX))
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim == 4 and a.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(np.full_like(a, np.nan), init.name))
    onnx.save(model, str(path))
    return path


def torch_files(w: Path) -> None:
    import torch

    ckpt = torch.load(PTH, weights_only=True)
    ckpt["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}  # fmt: skip
    torch.save(ckpt, w / "nan.pth")

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("this would run on load",))

    torch.save({"state_dict": Payload()}, w / "pickle.pth")


def classifier_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 10), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "W"], ["y"])], "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [weight])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def shadow(folder: Path, module: str) -> Path:
    """A folder that makes ``import module`` fail as on a machine without it (put first on PYTHONPATH)."""
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n")
    return folder


def broken_copy(folder: Path, module: str, cut: str) -> Path:
    """A folder holding the installed ``module`` (links to its files, put first on PYTHONPATH) with its files
    matching ``cut`` cut short, as a full disk during ``pip install`` leaves them."""
    installed = Path(importlib.util.find_spec(module).origin).parent  # type: ignore[union-attr, arg-type]
    shutil.copytree(installed, folder / module, symlinks=True, copy_function=os.symlink,
                    ignore=lambda _d, names: [n for n in names if n == "__pycache__"])
    for link in (folder / module).rglob(cut):
        start = link.resolve().read_bytes()[:100]  # longer, and the loader may map the missing part: SIGBUS
        link.unlink()
        link.write_bytes(start)
    return folder


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("trust")
    write_clip(w / "clip.avi")
    cv2.imwrite(str(w / "x.jpg"), photo((48, 64)))
    cv2.imwrite(str(w / "x.png"), photo((48, 64), "rocket.jpg"))
    cv2.imwrite(str(w / "tiny.png"), photo((3, 5)))
    cv2.imwrite(str(w / "one.png"), photo((1, 1)))
    cv2.imwrite(str(w / "odd.png"), photo((361, 641)))
    corrupt_jpeg(w / "corrupt.jpg")
    nan_onnx(w / "nan.onnx")
    classifier_onnx(w / "classifier.onnx")
    torch_files(w)
    (w / "garbage.plan").write_bytes(b"\x00" * 100)
    (w / "afile").write_text("a regular file, not a folder")
    shadow(w / "notorch", "torch")
    shadow(w / "noonnx", "onnx")
    shadow(w / "nocv2", "cv2")
    broken_copy(w / "brokenort" / "site-packages", "onnxruntime", cut="onnxruntime_pybind11_state*.so")
    (w / "depless" / "site-packages" / "onnxruntime").mkdir(parents=True)  # an onnxruntime whose dependency is gone
    (w / "depless" / "site-packages" / "onnxruntime" / "__init__.py").write_text("import flatbuffers_gone\n")
    for module in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        shadow(w / "notrt", module)
    (w / "dir.mp4").mkdir()
    return w


# ---- running the commands ------------------------------------------------------------------------------
@dataclass
class Case:
    args: list[str]  # after python -m cyclegan_edge.
    rc: int
    says: str  # in the one error line (rc != 0) or in stdout (rc 0)
    fsize: int = 0  # RLIMIT_FSIZE in bytes: a full disk
    pythonpath: str = ""
    cwd: str = ""
    prepare: list[tuple[str, str]] = field(default_factory=list)  # (copy from, to) relative to w; "" makes a folder


def limit_file_size(nbytes: int) -> Any:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


def run(w: Path, case: Case, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [case.pythonpath, ENV.get("PYTHONPATH", "")]))}
    if case.fsize:  # Python renames a short-written .pyc into __pycache__ under the limit: later imports would fail
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([sys.executable, "-m", "cyclegan_edge." + case.args[0], *case.args[1:]], cwd=w / case.cwd,
                          capture_output=True, text=True, env=env, timeout=timeout,
                          preexec_fn=limit_file_size(case.fsize) if case.fsize else None)  # fmt: skip


def rt(*args: str) -> list[str]:
    return ["runtime", *args, "--headless"]


CASES: dict[str, Case] = {
    # 4: an output that is an input
    "4-video-same": Case(rt("--video", "c4/clip.avi", "-o", "c4/clip.avi"), 1, "would replace the input c4/clip.avi"),
    "4-batch-same": Case(rt("--input", "c4/in", "-o", "c4/in/"), 1, "the output folder is the input folder"),
    "4-translate-same": Case(["translate", str(ONNX), "c4/in/x.png", "-o", "c4/in"], 1, "would replace the input"),
    # 5: two inputs, one output name
    "5-batch-collide": Case(rt("--input", "c5/in", "-o", "c5/out", "--size", "32"), 0, "2 of 2 files ok"),
    "5-translate-collide": Case(["translate", str(ONNX), "c5/a/x.jpg", "c5/b/x.jpg", "-o", "c5/t"], 0, "2 of 2 images written"),
    # 6: failed writes
    "6-translate-full": Case(["translate", str(ONNX), "x.jpg", "-o", "c6/t"], 1, "c6/t/x.png: File too large", fsize=1000),
    "6-translate-notdir": Case(["translate", str(ONNX), "x.jpg", "-o", "afile/t"], 1, "afile is a file, not a folder"),
    "6-batch-full": Case(rt("--input", "c6/in", "-o", "c6/b", "--size", "32"), 1, "", fsize=1000),
    "6-export-full": Case(["export", str(PTH), "--onnx", "c6/e/x.onnx", "--test-count", "1"], 1,
                          "c6/e/x.onnx: cannot write the export (File too large); nothing written", fsize=300_000),
    "6-export-notdir": Case(["export", str(PTH), "--onnx", "afile/x.onnx"], 1,
                            "afile/x.onnx: cannot write here (Not a directory); nothing written"),
    "6-bench-full": Case(["bench", str(ONNX), "--variants", "onnxruntime-fp32", "--sizes", "16", "--iters", "2",
                          "--warmup", "1", "--out", "c6/bench"], 1, "File too large", fsize=300),
    # 7, 8: too small, corrupt JPEG data
    "78-translate": Case(["translate", str(ONNX), "one.png", "tiny.png", "corrupt.jpg", "x.jpg", "-o", "c78/t"], 1,
                         "1 of 4 images written"),
    "78-batch": Case(rt("--input", "c78/in", "-o", "c78/b"), 1, "1 of 4 files ok"),
    # 9: NaN weights
    "9-runtime-nan": Case(rt("--engine", "nan.onnx", "--video", "clip.avi", "-o", "c9/out.mp4"), 1, "NaN/Inf"),
    "9-translate-nan": Case(["translate", "nan.onnx", "x.jpg", "-o", "c9/t"], 1, "NaN/Inf"),
    "9-export-nan": Case(["export", "nan.pth", "--onnx", "c9/e/x.onnx"], 1, "hold NaN/Inf values"),
    "9-export-pickle-new-folder": Case(["export", "pickle.pth", "--onnx", "c9/new/deeper/x.onnx"], 1,
                                       "holds Python objects besides tensors"),
    # 10: values refused up front
    "10-size-2": Case(rt("--size", "2", "--camera", "test://?frames=1", "-o", "c10/a.mp4"), 2, "use 8..4320"),
    "10-stream-hevc": Case(rt("udp://127.0.0.1:47001", "rtp://127.0.0.1:47010", "--codec", "hevc"), 2,
                           "rtp://127.0.0.1:47010: streams are H.264 (what every player takes): drop --codec hevc"),
    "10-headless-no-output": Case(rt("--camera", "test://?frames=2"), 2, "--headless and no OUTPUT: nothing would be "
                                  "shown or written"),  # it ran, and said "2 frames ->  at 9.1 FPS"
    # 11: optional packages that are not installed
    "11-pth-without-torch": Case(rt("--engine", str(PTH), "--camera", "test://?frames=1", "-o", "c11/a.mp4"), 1,
                                 "PyTorch models need torch: pip install 'cyclegan-edge[train]'", pythonpath="notorch"),
    "11-export-without-torch": Case(["export", str(PTH), "--onnx", "c11/x.onnx"], 1, "pip install 'cyclegan-edge[export]'",
                                    pythonpath="notorch"),
    "11-engine-without-onnx": Case(["export", str(ONNX), "--engine", "c11/x.plan"], 1, "pip install 'cyclegan-edge[engine]'",
                                   pythonpath="noonnx"),
    "11-evaluate-without-torch": Case(["evaluate", str(ONNX), "--dataroot", "."], 1,
                                      "evaluate needs torch (its domain classifier trains with it): pip install "
                                      "'cyclegan-edge[evaluate]'", pythonpath="notorch"),
    "11-demo-without-cv2": Case(rt("--demo", "-o", "c11/demo.mp4"), 1, "OpenCV (cv2) is not importable",
                                pythonpath="nocv2"),
    "11-translate-without-cv2": Case(["translate", str(ONNX), "x.jpg", "-o", "c11/t"], 1,
                                     "OpenCV (cv2) is not importable", pythonpath="nocv2"),
    "11-bench-pipeline-without-cv2": Case(["bench", "pipeline", str(ONNX), "--video", "clip.avi", "-o", "c11/p.json"],
                                          1, "OpenCV (cv2) is not importable", pythonpath="nocv2"),  # not "unexpected"
    "11-onnx-with-broken-onnxruntime": Case(rt("--engine", str(ONNX), "--backend", "onnxruntime", "--camera",
                                                "test://?frames=1", "-o", "c11/o.mp4"), 1,
                                             "onnxruntime is installed but broken (",
                                             pythonpath="brokenort/site-packages"),
    "11-onnx-with-a-dependency-gone": Case(rt("--engine", str(ONNX), "--backend", "onnxruntime", "--camera",
                                              "test://?frames=1", "-o", "c11/d.mp4"), 1,
                                           "onnxruntime needs flatbuffers_gone, which is not installed here: pip "
                                           "install flatbuffers_gone", pythonpath="depless/site-packages"),
    "11-bench-bundled-without-torch": Case(["bench", "photo2monet", "--variants", "onnxruntime-fp32", "--sizes", "32",
                                            "--iters", "2", "--rounds", "1", "-o", "c11/bench"], 0, "written: ",
                                           pythonpath="notorch"),  # an edge install benches the bundled ONNX
    "11-plan-without-tensorrt": Case(rt("--engine", "garbage.plan", "--camera", "test://?frames=1", "-o", "c11/p.mp4"),
                                     1, "TensorRT is not importable", pythonpath="notrt"),
    # 12: not an image generator
    "12-classifier": Case(rt("--engine", "classifier.onnx", "--video", "clip.avi", "-o", "c12/a.mp4"), 1,
                          "classifier.onnx: not an image generator (found inputs ?x3x224x224 and outputs ?x10"),
    # 13: a pickle
    "13-pickle-runtime": Case(rt("--engine", "pickle.pth", "--camera", "test://?frames=1", "-o", "c13/a.mp4"), 1,
                              "holds Python objects besides tensors"),
    # 14: one error path
    "14-translate-plan": Case(["translate", "garbage.plan", "x.jpg", "-o", "c14/t"], 1, "garbage.plan"),
    # 16: a path given to the wrong flag
    "16-video-folder": Case(rt("--video", "dir.mp4", "-o", "c16/a.mp4"), 1, "dir.mp4 is a folder: --input dir.mp4"),
    # 17: odd sizes stay odd
    "17-translate-odd": Case(["translate", str(ONNX), "odd.png", "-o", "c17/t"], 0, "1 of 1 images written"),
    "17-batch-odd": Case(rt("--input", "c17/in", "-o", "c17/b", "--size", "64"), 0, "1 of 1 files ok"),
    "17-camera-odd": Case(rt("--camera", "test://?size=641x361&frames=2&fps=5", "--size", "32", "-o", "c17/frames"), 0,
                          "-> c17/frames"),
    # 18: progress and the model named
    "18-video": Case(rt("--video", "clip.avi", "-o", "c18/a.mp4", "--size", "32"), 0,
                     " (bundled; --model MODEL for another), "),
    # 21: bench pipeline without --out
    "21-bench-pipeline": Case(["bench", "pipeline", str(ONNX), "--video", "../clip.avi", "--size", "32"], 0,
                              "on the same frames", cwd="c21"),
    # 22: the trtexec command, from names alone
    "22-print-trtexec": Case(["export", str(PTH), "--onnx", "c22/x.onnx", "--precision", "fp16", "--print-trtexec",
                              "--trt-version", "8.2"], 0, "trtexec --onnx=c22/x.fp16.onnx"),
}

# the same checks in this process (``main(argv)`` returns the exit status: what ``python -m`` exits with), where a
# command fails before doing any work: a new interpreter each would only add start-up time
IN_PROCESS: dict[str, tuple[str, Case]] = {
    "4-video-symlink": ("runtime", Case(rt("--video", "c4/clip.avi", "-o", "c4/link.avi"), 1, "would replace the input c4/clip.avi")),
    "4-video-dotdot": ("runtime", Case(rt("--video", "c4/clip.avi", "-o", "c4/new/../clip.avi"), 1, "would replace the input")),
    "4-engine-over-onnx": ("export", Case(["c4/m.onnx", "--engine", "c4/m.onnx"], 2,
                                          "--engine c4/m.onnx: the name must end in .plan or .engine")),
    "10-size-negative": ("runtime", Case(rt("--size", "-5", "--camera", "test://?frames=1", "-o", "c10/a.mp4"), 2, "use 8..4320")),
    "10-size-huge": ("runtime", Case(rt("--size", "100000", "--camera", "test://?frames=1", "-o", "c10/a.mp4"), 2, "use 8..4320")),
    "10-bench-size": ("bench", Case(["pipeline", str(ONNX), "--video", "clip.avi", "--size", "3"], 2, "use 8..4320")),
    "10-test-size": ("runtime", Case(rt("--camera", "test://?size=640", "-o", "c10/a.mp4"), 2, "size=WxH")),
    "10-test-fps": ("runtime", Case(rt("--camera", "test://?fps=abc", "-o", "c10/a.mp4"), 2, "bad test source")),
    "12-classifier-ort": ("runtime", Case(rt("--engine", "classifier.onnx", "--backend", "onnxruntime", "--video", "clip.avi",
                                             "-o", "c12/a.mp4"), 1, "not an image generator (found inputs")),
    "13-pickle-translate": ("translate", Case(["pickle.pth", "x.jpg", "-o", "c13/t"], 1, "not loaded, for safety")),
    "14-translate-usage": ("translate", Case([], 2, "the following arguments are required")),
    "14-translate-no-model": ("translate", Case(["missing.onnx", "x.jpg", "-o", "c14/t"], 1, "missing.onnx: no such model file")),
    "14-export-plan": ("export", Case(["garbage.plan", "--engine", "c14/x.plan"], 1, "is a TensorRT engine already")),
    "14-runtime-usage": ("runtime", Case(["runtime", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag")),
    "16-input-file": ("runtime", Case(rt("--input", "clip.avi", "-o", "c16/b"), 1, "clip.avi is a file: --video clip.avi")),
    "16-input-image": ("runtime", Case(rt("--input", "x.jpg", "-o", "c16/b"), 1, "cyclegan_edge.translate MODEL x.jpg")),
}  # fmt: skip

# files that exist before the commands run and must come out unchanged
BEFORE: dict[str, str] = {
    "c4/clip.avi": "clip.avi", "c4/in/x.png": "x.png", "c4/in/x.jpg": "x.jpg", "c4/m.onnx": str(ONNX),
    "c5/in/x.jpg": "x.jpg", "c5/in/x.png": "x.png", "c5/a/x.jpg": "x.jpg", "c5/b/x.jpg": "x.png",
    "c6/in/a.jpg": "x.jpg", "c6/in/b.jpg": "x.jpg", "c6/e/x.onnx": "x.jpg",
    "c78/in/one.png": "one.png", "c78/in/tiny.png": "tiny.png", "c78/in/x.jpg": "x.jpg", "c78/in/corrupt.jpg": "corrupt.jpg",
    "c8/in/corrupt.jpg": "corrupt.jpg", "c8/in/x.jpg": "x.jpg", "c9/e/x.onnx": "x.png",
    "c17/in/odd.png": "odd.png",
}  # fmt: skip


def snapshot(w: Path) -> dict[str, tuple[bytes, int]]:
    return {rel: ((w / rel).read_bytes(), (w / rel).stat().st_mtime_ns) for rel in BEFORE}


@pytest.fixture(scope="module")
def ran(w: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    for rel, src in BEFORE.items():
        (w / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(w / src, w / rel)
    (w / "c4" / "link.avi").symlink_to("clip.avi")
    (w / "c21").mkdir()
    t = time.perf_counter()
    before = snapshot(w)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run, w, case) for name, case in CASES.items()}
        results = {name: f.result() for name, f in futures.items()}
    print(f"{len(CASES)} commands in {time.perf_counter() - t:.0f} s")
    results.update({name: run_here(w, command, case) for name, (command, case) in IN_PROCESS.items()})
    assert snapshot(w) == before, "a file that was there before was changed"
    return results


def run_here(w: Path, command: str, case: Case) -> subprocess.CompletedProcess[str]:
    import importlib

    main = importlib.import_module(f"cyclegan_edge.{command}" + (".__main__" if command != "translate" else "")).main
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(w)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(case.args[1:] if case.args[:1] == [command] else case.args)
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(case.args, rc, out.getvalue(), err.getvalue())


def check(ran: dict[str, subprocess.CompletedProcess[str]], name: str) -> subprocess.CompletedProcess[str]:
    """The exit status, no traceback, exactly one error line (when failing) saying what the case expects."""
    r, case = ran[name], CASES[name] if name in CASES else IN_PROCESS[name][1]
    assert r.returncode == case.rc, (name, r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, (name, r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    if case.rc:
        assert len(errors) <= 1, (name, errors)
        said = errors[0] if errors else r.stdout
        assert case.says in said, (name, said, r.stderr[-1000:])
    else:
        assert not errors and case.says in r.stdout, (name, r.stdout[-1000:], r.stderr[-1000:])
    return r


def one_error(r: subprocess.CompletedProcess[str]) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def files(folder: Path) -> list[str]:
    """What ``folder`` holds, less the marker batch mode and translate leave with their outputs (checked on its own)."""
    found = folder.rglob("*") if folder.exists() else []
    return sorted(str(p.relative_to(folder)) for p in found if p.name != OUTPUT_MARKER)


# ---- the items -----------------------------------------------------------------------------------------
def test_4_an_output_that_is_an_input_is_refused_before_anything_opens(w: Path, ran: Any) -> None:
    for name in ("4-video-same", "4-video-symlink", "4-video-dotdot", "4-batch-same", "4-translate-same",
                 "4-engine-over-onnx"):  # fmt: skip
        check(ran, name)
    assert files(w / "c4") == ["clip.avi", "in", "in/x.jpg", "in/x.png", "link.avi", "m.onnx"]  # nothing made, not even new/


def test_4_an_output_folder_inside_the_input_is_not_read_back(w: Path) -> None:
    from cyclegan_edge.runtime.batch import folder_files

    (w / "c4n" / "out").mkdir(parents=True)
    for rel in ("a.jpg", "out/a.png"):
        shutil.copy(w / "x.jpg", w / "c4n" / rel)
    assert folder_files(w / "c4n", w / "c4n" / "out") == [w / "c4n" / "a.jpg"]


def test_4_outputs_of_an_earlier_run_are_not_read_back_by_the_next_run_elsewhere(tmp_path: Path) -> None:
    """A batch (or translate) into a folder inside its input folder, then another over the input folder into a
    folder elsewhere: the second converts the inputs, not the first one's outputs (zebras of zebras). Asked for
    by name, the earlier outputs do convert."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((ASSETS_DIR / "images").glob("*.jpg"))[:2]:
        shutil.copy(p, photos / p.name)
    model = str(ASSETS_DIR / "photo2monet.onnx")

    def runtime(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", *args, "--model", model, "--size", "64"],
                              capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path)  # fmt: skip

    first = runtime("photos", "photos/monet")
    assert first.returncode == 0 and "2 of 2 files ok" in first.stdout, first.stderr[-2000:]
    assert (photos / "monet" / OUTPUT_MARKER).is_file()
    t = subprocess.run([sys.executable, "-m", "cyclegan_edge.translate", model, "photos", "-o", "photos/more"],
                       capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path)  # fmt: skip
    assert t.returncode == 0 and "2 of 2 images written" in t.stdout, t.stderr[-2000:]
    left_out = (f"WARNING photos/{{}}: left out 2 files there, the outputs of an earlier run (it holds {OUTPUT_MARKER}; "
                "delete that file to have them read as inputs)")  # fmt: skip
    assert left_out.format("monet") in t.stderr
    again = runtime("photos", "elsewhere")
    assert again.returncode == 0 and "2 of 2 files ok" in again.stdout, again.stderr[-2000:]
    assert left_out.format("monet") in again.stderr and left_out.format("more") in again.stderr
    assert files(tmp_path / "elsewhere") == sorted(f"{p.stem}.png" for p in photos.glob("*.jpg"))
    assert (tmp_path / "elsewhere" / OUTPUT_MARKER).is_file()
    chained = runtime("photos/monet", "monet_again")  # the earlier outputs, by name
    assert chained.returncode == 0 and "2 of 2 files ok" in chained.stdout, chained.stderr[-2000:]


def test_5_inputs_that_share_an_output_name_get_their_own(w: Path, ran: Any) -> None:
    from cyclegan_edge.imaging.files import unique_outputs

    r = check(ran, "5-batch-collide")
    assert files(w / "c5" / "out") == ["x.jpg.png", "x.png.png"]
    a, b = (cv2.imread(str(w / "c5" / "out" / n)) for n in ("x.jpg.png", "x.png.png"))
    assert a.shape == b.shape == (48, 64, 3) and np.abs(a.astype(int) - b.astype(int)).mean() > 5
    assert r.stdout.count(" done") == 2  # as many "done" as files written
    check(ran, "5-translate-collide")
    assert files(w / "c5" / "t") == ["x.jpg-2.png", "x.jpg.png"]
    p = [Path("d/x.jpg"), Path("d/x.png"), Path("d/y.jpg")]
    assert unique_outputs(p, [Path("o/x.png"), Path("o/x.png"), Path("o/y.png")]) == [
        Path("o/x.jpg.png"), Path("o/x.png.png"), Path("o/y.png")]  # fmt: skip


def test_6_failed_writes_say_so_in_one_line_and_exit_1(w: Path, ran: Any) -> None:
    check(ran, "6-translate-full")
    assert files(w / "c6" / "t") == []  # no output, no temporary file left
    check(ran, "6-translate-notdir")
    r = check(ran, "6-batch-full")  # the table says which file and why; the batch stops there
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("a.jpg "))
    assert row.endswith("failed: cannot write (c6/b/a.png: File too large)"), row
    rest = next(ln for ln in r.stdout.splitlines() if ln.startswith("b.jpg "))
    assert rest.endswith("not tried (an output could not be written)"), rest
    assert "0 of 2 files ok" in r.stdout and files(w / "c6" / "b") == []
    check(ran, "6-export-full")  # the earlier x.onnx is unchanged (the fixture checks bytes and mtime)
    assert files(w / "c6" / "e") == ["x.onnx"]  # no staging folder left
    check(ran, "6-export-notdir")
    check(ran, "6-bench-full")


def test_6_a_read_only_folder(w: Path) -> None:
    """An image, a video, an export and an engine build into a read-only folder: one line naming the path, the
    export and the build before their work. Root writes there anyway, so as root the commands run without the
    capability that lets it (setpriv)."""
    prefix = as_user()
    out = w / "ro"
    out.mkdir()
    out.chmod(0o555)
    clips = [write_clip(w / "ro_clip.mp4"), ASSETS_DIR / "butterfly.mp4"]  # without and with sound
    for args, where in ([["translate", str(ONNX), "x.jpg", "-o", "ro"], "ro"], *[
            [["runtime", str(clip), "ro/v.mp4", "--engine", str(ONNX), "--max-frames", "3", "--size", "64",
              "--headless"], "ro/v.mp4: cannot write (Permission denied)"] for clip in clips],
            [["export", str(PTH), "--onnx", "ro/x.onnx"], "ro/x.onnx: cannot write here (Permission denied)"],
            [["export", str(ONNX), "--engine", "ro/x.plan"], "ro/x.plan: cannot write here (Permission denied)"]):  # fmt: skip
        r = subprocess.run([*prefix, sys.executable, "-m", "cyclegan_edge." + args[0], *args[1:]], cwd=w,
                           capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
        assert r.returncode == 1 and "Permission denied" in one_error(r) and where in one_error(r), r.stderr[-1500:]
    # a batch into a folder that cannot be written is refused before the model loads (a full disk met later
    # stops at the first file: test_6_failed_writes_say_so_in_one_line_and_exit_1)
    (w / "ro_batch").mkdir()
    for clip in clips:
        shutil.copy(clip, w / "ro_batch" / clip.name)
    for batch_out in ("ro/videos", "ro", "afile"):
        r = subprocess.run([*prefix, sys.executable, "-m", "cyclegan_edge.runtime", "ro_batch", batch_out, "--engine",
                            "missing.onnx"], cwd=w, capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
        why = "a file, not a folder" if batch_out == "afile" else "cannot write (Permission denied)"
        assert (r.returncode, r.stdout) == (1, "") and r.stderr == (
            f"error: {batch_out}: {why} (a batch writes its outputs into a folder); nothing converted\n"), r.stderr
    assert os.listdir(out) == []


def test_7_images_too_small_for_the_model_are_skipped_with_a_reason(w: Path, ran: Any) -> None:
    r = check(ran, "78-translate")
    assert "skipped: one.png: 1x1 px is too small for the generator (it needs at least 5 px per side)" in r.stderr
    assert "skipped: tiny.png: 5x3 px is too small" in r.stderr and files(w / "c78" / "t") == ["x.png"]
    r = check(ran, "78-batch")  # the batch finishes and prints its table
    assert r.stdout.count("px is too small") == 2 and files(w / "c78" / "b") == ["x.png"]
    assert "done" in next(ln for ln in r.stdout.splitlines() if ln.startswith("x.jpg "))


def test_8_corrupt_jpeg_data_is_detected_and_skipped(w: Path, ran: Any) -> None:
    from cyclegan_edge.imaging.io import ImageReadError, read_image
    from cyclegan_edge.train.data import scan_images

    r = check(ran, "78-translate")
    assert "skipped: corrupt.jpg: corrupt JPEG data, it would decode partly grey" in r.stderr
    r = check(ran, "78-batch")
    assert "failed: corrupt JPEG data" in next(ln for ln in r.stdout.splitlines() if ln.startswith("corrupt.jpg"))
    with pytest.raises(ImageReadError, match="corrupt JPEG data"):
        read_image(w / "corrupt.jpg")
    assert read_image(w / "x.jpg").shape == (48, 64, 3)
    assert scan_images(w / "c8" / "in", show_progress=False) == [w / "c8" / "in" / "x.jpg"]  # the trainer's scan


def test_9_nan_weights_fail_in_one_line_and_leave_no_file(w: Path, ran: Any) -> None:
    for name in ("9-runtime-nan", "9-translate-nan", "9-export-nan", "9-export-pickle-new-folder"):
        check(ran, name)
    # no video, no partial file, no image; the earlier x.onnx kept; no empty folder made for an export that failed
    assert files(w / "c9") == ["e", "e/x.onnx"]


def test_10_bad_values_are_refused_up_front(ran: Any) -> None:
    for name in ("10-size-2", "10-size-negative", "10-size-huge", "10-bench-size", "10-test-fps", "10-test-size",
                 "10-headless-no-output", "10-stream-hevc"):  # a receiver waited for its sender, then said it
        check(ran, name)


def test_11_a_missing_optional_package_names_its_extra(w: Path, ran: Any) -> None:
    for name in ("11-pth-without-torch", "11-export-without-torch", "11-engine-without-onnx", "11-evaluate-without-torch"):
        check(ran, name)
    for name in ("11-demo-without-cv2", "11-translate-without-cv2", "11-bench-pipeline-without-cv2"):  # before any work
        r = check(ran, name)
        assert r.stderr.strip() == one_error(r), (name, r.stderr)
    from cyclegan_edge.trt.loader import no_gpu_here

    said = one_error(check(ran, "11-plan-without-tensorrt"))  # where no GPU is, installing TensorRT would not help
    assert said.endswith(no_gpu_here() or "or run the .onnx with ONNX Runtime instead"), said
    # installed but its native library gone: "pip install" would change nothing; reinstalling it does
    said = one_error(check(ran, "11-onnx-with-broken-onnxruntime"))
    assert said.endswith("reinstall it: pip install --force-reinstall --no-deps onnxruntime"), said
    script = ("from cyclegan_edge.errors import describe\ntry:\n    import onnxruntime\nexcept ImportError as e:\n"
              "    print(describe(e))")  # an ImportError that reaches the one error path says the same
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       env={**ENV, "PYTHONPATH": str(w / "brokenort" / "site-packages")})  # fmt: skip
    assert r.stdout.startswith("onnxruntime is installed but broken (") and said.endswith(r.stdout.strip()[-60:]), r
    # a dependency of it gone: "reinstall it --no-deps" would not bring it back
    check(ran, "11-onnx-with-a-dependency-gone")
    check(ran, "11-bench-bundled-without-torch")  # it asked for torch, to read the bundled checkpoint
    assert json.loads((w / "c11" / "bench" / "report.json").read_text())["model"]["file"] == "photo2monet.onnx"


def test_12_a_model_that_is_not_a_generator_is_refused_at_load(w: Path, ran: Any) -> None:
    from cyclegan_edge.runtime.backends import generator_io_problem

    for name in ("12-classifier", "12-classifier-ort"):
        r = check(ran, name)
        assert "finalized" not in r.stderr
    assert files(w / "c12") == []
    assert generator_io_problem([["N", 3, "H", "W"]], [["N", 3, "H", "W"]]) is None
    assert generator_io_problem([[1, 3, 256, 256]], [[1, 3, 256, 256]]) is None
    assert "differs from input size" in str(generator_io_problem([[1, 3, 256, 256]], [[1, 3, 128, 128]]))
    assert "found inputs 1x1x8x8" in str(generator_io_problem([[1, 1, 8, 8]], [[1, 3, 8, 8]]))


def test_13_a_pickle_is_refused_plainly_without_suggesting_unsafe_loading(ran: Any) -> None:
    for name in ("13-pickle-runtime", "13-pickle-translate"):
        line = one_error(check(ran, name))
        assert "weights_only" not in line and "trust" not in line and line.endswith("path))")


def test_14_one_error_path_for_all_commands(ran: Any) -> None:
    for name in ("14-translate-no-model", "14-translate-plan", "14-export-plan", "14-translate-usage", "14-runtime-usage"):
        check(ran, name)
    assert "see python -m cyclegan_edge.translate --help" in one_error(ran["14-translate-usage"])


def test_15_ctrl_c_during_bench_keeps_what_was_measured(w: Path) -> None:
    out = w / "c15"
    rc, _, err = interrupt_when([sys.executable, "-m", "cyclegan_edge.bench", str(ONNX), "--variants",
                                 "onnxruntime-fp32", "--sizes", "16,24,32,40,48,56,64,72", "--iters", "40", "--warmup",
                                 "1", "--out", str(out)], (out / "report.json").exists, ENV)  # fmt: skip
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and "stopped" in err and "cases measured; report in" in err
    report = json.loads((out / "report.json").read_text())
    assert 1 <= len(report["results"]) <= 8  # the cases of its first round so far, or all 8 in a later one
    assert any(n.startswith("interrupted (Ctrl-C) in round ") for n in report["notes"]), report["notes"]
    assert "interrupted" in (out / "report.md").read_text() and (out / "latency.png").stat().st_size > 1000


def test_16_a_path_given_to_the_wrong_flag_names_the_right_one(ran: Any) -> None:
    for name in ("16-video-folder", "16-input-file", "16-input-image"):
        check(ran, name)


def test_17_output_size_equals_input_size(w: Path, ran: Any) -> None:
    check(ran, "17-translate-odd")
    check(ran, "17-batch-odd")
    check(ran, "17-camera-odd")
    for out in (w / "c17" / "t" / "odd.png", w / "c17" / "b" / "odd.png", *sorted((w / "c17" / "frames").glob("*.png"))):
        assert cv2.imread(str(out)).shape == (361, 641, 3), out
    assert list((w / "c17" / "frames").glob("*.png"))


def test_18_long_work_shows_progress_and_the_model_used(w: Path, ran: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from cyclegan_edge.export.int8 import Int8Options, quantize_int8

    r = check(ran, "18-video")
    assert "/6 [" in r.stderr and "frame/s" in r.stderr  # a tqdm bar with the total from the container
    assert "\r" not in r.stderr  # captured, not a terminal: the bar as whole lines (cyclegan_edge.progress)
    assert r.stdout.strip().splitlines()[-1].startswith("6 frames -> c18/a.mp4 at ")
    assert f"(model {DEMO_MODELS[DEFAULT_DEMO]}" in r.stdout  # the bundled model, named
    r = ran["21-bench-pipeline"]
    assert "pipeline: " in r.stderr and "inference only: " in r.stderr and "/6 [" in r.stderr
    quantize_int8(ONNX, w / "c18" / "m.int8.onnx", ASSETS_DIR / "images", Int8Options(calib_count=2))
    assert "INT8 calibration" in capsys.readouterr().err


def test_19_latency_plot_is_readable_with_many_cases(w: Path) -> None:
    from cyclegan_edge.bench.report import latency_plot
    from cyclegan_edge.runtime.timing import latency_stats

    rng = np.random.default_rng(0)
    rows = []
    for h, wd, b in ((256, 256, 1), (256, 256, 4), (720, 1280, 1), (720, 1280, 4)):
        for i, v in enumerate(("pytorch", "onnxruntime-fp32", "onnxruntime-int8", "tensorrt-fp16")):
            s = list(rng.lognormal(np.log((i + 1) * 10 * b * h * wd / 65536), 0.1, 20))
            s[0] *= 50  # one outlier
            rows.append({"variant": v, "height": h, "width": wd, "batch": b, "samples_ms": s, "latency_ms": latency_stats(s, b)})
    latency_plot(rows, w / "latency.png")
    img = cv2.imread(str(w / "latency.png"))
    assert img.shape[0] > 16 * 25  # about 30 px per case: labels do not overprint
    assert img.shape[1] >= 900


def test_20_compare_uses_one_statistic_and_says_what_differs() -> None:
    from cyclegan_edge.bench.report import compare

    def rep(p50: float, mean: float, cpu: str, ort: str, cases: list[tuple[int, int]], iters: int) -> dict[str, Any]:
        rows = [{"variant": "onnxruntime-fp32", "height": h, "width": wd, "batch": 1, "iterations": iters, "warmup": 5,
                 "latency_ms": {"p50": p50, "p90": p50, "mean": mean, "fps": 1000 / mean}}
                for h, wd in cases]  # fmt: skip
        return {"machine": {"cpu": cpu, "cores": 8, "versions": {"onnxruntime": ort}}, "created": "t",
                "toolkit_version": "0.1.0", "results": rows}  # fmt: skip

    # B's median is faster but its mean is slower (an outlier): latency and FPS must agree on "faster"
    text = compare(rep(100.0, 100.0, "Orin", "1.16", [(256, 256), (512, 512)], 30),
                   rep(50.0, 200.0, "Xavier", "1.18", [(256, 256), (720, 1280)], 100))  # fmt: skip
    assert "| onnxruntime-fp32 | 256x256 | 1 | 100.00 | 50.00 | 0.500 | 2.000 |" in text
    assert "only in A: onnxruntime-fp32 512x512 batch 1" in text and "only in B: onnxruntime-fp32 720x1280 batch 1" in text
    assert "warning: timed calls differ: A 30 calls x 1 round (warm-up 5), B 100 calls x 1 round (warm-up 5)" in text
    assert "warning: A and B carry no spread of rounds" in text  # one round each: nothing can mark a ratio as noise
    assert "warning: machine cpu differs: A Orin, B Xavier" in text
    assert "warning: onnxruntime differs: A 1.16, B 1.18" in text


def test_21_bench_pipeline_compares_like_with_like_and_saves_without_out(w: Path, ran: Any) -> None:
    r = check(ran, "21-bench-pipeline")
    assert "written: bench_report/pipeline.json" in r.stdout
    result = json.loads((w / "c21" / "bench_report" / "pipeline.json").read_text())
    assert result["frames"] == 6 and "same frames" in result["compared"]
    assert result["ratio"] == pytest.approx(result["pipeline_fps"] / result["inference_fps"])
    # which model it was (a bundled name or a path) and which toolkit measured it: said in the JSON too
    assert result["model"]["file"] == ONNX.name and len(result["model"]["sha256"]) == 64 and result["toolkit_version"]


def test_22_print_trtexec_needs_no_export_and_fits_the_target_version(w: Path, ran: Any) -> None:
    from cyclegan_edge.trt.build import EngineOptions, equivalent_trtexec

    r = check(ran, "22-print-trtexec")
    assert "# for TensorRT 8.2 (--trt-version)" in r.stdout
    assert "--workspace=1024" in r.stdout and "--memPoolSize" not in r.stdout and "--fp16" in r.stdout
    assert not (w / "c22").exists()  # nothing exported
    opts = EngineOptions(precision="fp16")
    assert "--stronglyTyped" in equivalent_trtexec("m.fp16.onnx", "m.plan", opts, "tensorrt", "10.3", onnx_prec="fp16")
    assert "--memPoolSize=workspace:1024M --fp16" in equivalent_trtexec("m.onnx", "m.plan", opts, "tensorrt", "8.6", "fp32")
    rtx = equivalent_trtexec("m.fp16.onnx", "m.plan", opts, "tensorrt_rtx", "1.7", "fp16")
    assert rtx.startswith("tensorrt_rtx ") and "--stronglyTyped" not in rtx


def test_23_tensorrt_rtx_is_named_with_where_it_runs(w: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cyclegan_edge.export.__main__ import engine_written
    from cyclegan_edge.trt.loader import TensorRTUnavailable, import_cudart
    from cyclegan_edge.trt.plan import EngineSidecar, sidecar_path

    engine = w / "c23" / "m.plan"
    side = {"tensorrt_version": "1.7.1", "gpu_name": "none", "precision": "fp16", "profile": {}, "onnx_sha256": "",
            "strongly_typed": True}  # fmt: skip
    EngineSidecar(tensorrt_flavor="tensorrt_rtx", compute_capability="8.6,8.9,12.0", **side).write(sidecar_path(engine))
    line = engine_written(engine)
    assert "TensorRT-RTX 1.7.1 engine written" in line and "8.6, 8.9, 12.0" in line and "Orin is 8.7" in line
    EngineSidecar(tensorrt_flavor="tensorrt", compute_capability="8.7", **side).write(sidecar_path(engine))
    assert "TensorRT 1.7.1 engine written for none (compute capability 8.7" in engine_written(engine)
    for name in ("cuda", "cuda.bindings", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # cuda-python not installed
    with pytest.raises(TensorRTUnavailable, match=r"\[trt-rtx\]"):
        import_cudart("tensorrt_rtx")
    with pytest.raises(TensorRTUnavailable, match=r"\[trt\]"):
        import_cudart("tensorrt")


def test_24_a_built_wheel_installs_and_runs_the_demo_and_an_export(tmp_path: Path) -> None:
    """pip wheel, a fresh venv, the wheel installed there, run from outside the repository. Dependencies come
    from this environment (on PYTHONPATH: the new venv's base interpreter has none), never from a registry."""
    import site
    import sysconfig

    root = ROOT
    t = time.perf_counter()
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    shutil.copytree(root / "cyclegan_edge", src / "cyclegan_edge", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=180)  # fmt: skip
    wheel = next((tmp_path / "dist").glob("cyclegan_edge-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    deps = os.pathsep.join([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    env = {**ENV, "PYTHONPATH": deps}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def installed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(py), *args], cwd=work, capture_output=True, text=True, env=env, timeout=180)

    r = installed("-c", "import cyclegan_edge.export.__main__ as e, cyclegan_edge as c; from cyclegan_edge.imaging.io "
                  "import load_test_images; print(c.__file__); print(len(load_test_images(e.default_test_images(), 8)))")
    assert r.returncode == 0, r.stderr[-2000:]
    where, count = r.stdout.split()
    assert Path(where).is_relative_to(venv) and count == "3"  # the package's own copy, with its images
    assets = Path(where).parent / "assets"
    r = installed("-m", "cyclegan_edge.runtime", "--demo", "--headless", "--max-frames", "3", "--size", "64")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1].startswith("3 frames -> cyclegan_edge_demo.mp4")
    assert (work / "cyclegan_edge_demo.mp4").stat().st_size > 1000
    r = installed("-m", "cyclegan_edge.export", str(assets / "photo2monet.pth"), "--onnx", "m.onnx", "--print-trtexec",
                  "--trt-version", "10.3")  # fmt: skip
    assert r.returncode == 0 and "trtexec --onnx=m.onnx --saveEngine=m.plan" in r.stdout, r.stderr[-2000:]
    r = installed("-m", "cyclegan_edge.export", str(assets / "photo2monet.onnx"), "--print-trtexec", "--trt-version", "8.5")
    assert r.returncode == 0 and "--memPoolSize=workspace:1024M" in r.stdout, r.stderr[-2000:]
    assert time.perf_counter() - t < 120


def test_holding_ctrl_c_delivers_after_and_leaves_an_ignored_sigint_ignored() -> None:
    """A Ctrl-C inside is recorded and raised after the block; one the shell told us to ignore (a job started with
    `&`) is neither recorded (it cancelled a TensorRT build, then blamed TensorRT) nor raised; the mask is undone.
    In a fresh interpreter: a real SIGINT among the native threads earlier tests leave in this one is no test."""
    script = textwrap.dedent("""
        import os, signal, sys, time
        from cyclegan_edge.errors import holding_ctrl_c

        def interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)

        for mask in (True, False):
            try:
                with holding_ctrl_c(mask=mask) as caught:
                    interrupt()
                    assert caught == ([] if mask else [signal.SIGINT]), caught  # masked: pending in the OS
                sys.exit("no KeyboardInterrupt after the block")
            except KeyboardInterrupt:
                pass
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with holding_ctrl_c(mask=False) as caught:
            interrupt()
        assert caught == [] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_backend_library_loads_whole_before_a_ctrl_c_acts() -> None:
    """A Ctrl-C 0.2 s into `runtime test://... out.mp4` (while OpenVINO's native module loaded) left OpenVINO half
    registered ('type "Extension" is already registered!'): the runtime fell back to ONNX Runtime and recorded on,
    the Ctrl-C lost (1 of 13 early-signal runs). Now the import finishes and the Ctrl-C acts after it. Here the
    SIGINT is raised from inside the import, at one of its submodules, in a fresh interpreter."""
    script = textwrap.dedent("""
        import importlib.abc, signal, sys
        from cyclegan_edge.errors import importable

        class InterruptAt(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "onnxruntime.capi._pybind_state":
                    sys.meta_path.remove(self)
                    signal.raise_signal(signal.SIGINT)
                return None

        sys.meta_path.insert(0, InterruptAt())
        try:
            importable("onnxruntime")
            sys.exit("no KeyboardInterrupt")
        except KeyboardInterrupt:
            print("loaded" if "onnxruntime" in sys.modules else "half loaded")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "loaded", (r.stdout, r.stderr[-2000:])


def test_out_of_memory_is_one_line_that_says_so() -> None:
    """`train --crop-size 100000` ended in "error: RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0.
    DefaultCPUAllocator: can't allocate memory: ..." (unexpected). Torch's real allocation failure, and numpy's."""
    import torch

    from cyclegan_edge.errors import describe

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    # bench --sizes 100000 said "error: error: OpenCV(5.0.0) ... (-4:Insufficient memory) Failed to allocate ...
    # (unexpected; ...)", ONNX Runtime "Fail: [ONNXRuntimeError] ... Failed to allocate memory for requested buffer"
    expand = helper.make_graph([helper.make_node("Expand", ["x", "s"], ["y"])], "huge",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                               [numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "s")])  # fmt: skip
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(helper.make_model(expand, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), options, providers=["CPUExecutionProvider"])  # fmt: skip
    lines = []
    for allocate in (lambda: torch.empty(10**16), lambda: np.empty(10**16),  # beyond a 47-bit address space
                     lambda: cv2.resize(np.zeros((4, 4, 3), np.uint8), (10**6, 10**6)),  # 3 TB
                     lambda: session.run(None, {"x": np.ones(1, np.float32)})):  # 4 TB  # fmt: skip
        with pytest.raises(Exception) as raised:
            allocate()
        lines.append(describe(raised.value))
    assert lines == [f"out of memory ({size} asked at once): smaller images (--size, --crop-size) or a smaller batch "
                     "need less" for size in ("37252903.0 GiB", "71.1 PiB", "2794.0 GiB", "3725.3 GiB")], lines


def test_an_atomic_write_gets_the_mode_the_umask_gives_a_new_file(tmp_path: Path) -> None:
    """Reading the umask set it to 0 for a moment (a file another thread created then was world-writable); it is
    read from /proc now, and the file written still gets the mode a new file gets under it."""
    from cyclegan_edge.atomic import write_json

    before = os.umask(0o027)
    try:
        with pytest.MonkeyPatch.context() as mp:  # on Linux it is never set to be read
            mp.setattr(os, "umask", lambda mask: pytest.fail(f"umask set to {mask:o}"))
            write_json(tmp_path / "a.json", {"i": 1})
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(before)
