"""Distillation on real images: a student learns the teacher's mapping, resumes exactly, exports with parity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import COMPRESSED_G, ONE_THREAD, SHARED_DATA, need
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.models import load_generator

TINY = ["--student", "mobile:4_4_8_4_8_8_4_4", "--ndf", "8", "--load-size", "32", "--crop-size", "32", "--no-flip",
        "--workers", "0", "--log-every", "1", "--max-images", "1", "--seed", "0"]  # fmt: skip
LEARNS_BAR = 0.5


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = need(SHARED_DATA / "horse2zebra")
    need(COMPRESSED_G)
    root = tmp_path_factory.mktemp("h2z")
    for domain in ("trainA", "trainB", "testA"):
        (root / domain).mkdir()
        for p in sorted((src / domain).glob("*.jpg"))[:2]:
            shutil.copy(p, root / domain / p.name)
    return root


def distill(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cyclegan_edge.distill", "--teacher", str(COMPRESSED_G), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD})  # fmt: skip


def student_teacher_l1(student_path: Path, data: Path) -> float:
    import cv2

    from cyclegan_edge.imaging.frames import frames_to_tensor

    img = cv2.imread(str(sorted((data / "trainA").glob("*.jpg"))[0]), cv2.IMREAD_COLOR)
    x = torch.from_numpy(frames_to_tensor([cv2.resize(img, (32, 32), interpolation=cv2.INTER_CUBIC)]))
    student, teacher = load_generator(student_path).model, load_generator(COMPRESSED_G).model
    with torch.no_grad():
        return float((student(x) - teacher(x)).abs().mean())


@pytest.mark.parametrize("lr", ["2e-3", "0"])
def test_student_learns_the_teacher_and_exports_with_parity(lr: str, data: Path, tmp_path: Path, margin: Any) -> None:
    """Random-init student: its L1 to the teacher on the training image falls below half of the untrained
    student's; with lr 0 (nothing learns) the same bar fails."""
    common = ["--dataroot", str(data), *TINY, "--init", "random", "--output", str(tmp_path)]
    before = distill([*common, "--lr", "0", "--max-iters", "1", "--name", "untrained"], tmp_path)
    assert before.returncode == 0, before.stderr[-2000:]
    r = distill([*common, "--lr", lr, "--max-iters", "60", "--sample-every", "60", "--name", "s", "--eval-count", "2"],
                tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "s"
    ratio = student_teacher_l1(run / "student.pth", data) / student_teacher_l1(tmp_path / "untrained" / "student.pth", data)
    margin("student-teacher L1 trained/untrained", ratio, "<" if float(lr) > 0 else ">=", LEARNS_BAR)
    assert (ratio < LEARNS_BAR) == (float(lr) > 0), f"student-teacher L1 after/before = {ratio:.3f}"
    if float(lr) == 0:
        return
    student = load_generator(run / "student.pth")  # loads strictly, architecture from the file alone
    assert student.config.channels == (4, 4, 8, 4, 8, 8, 4, 4) and student.meta["init"] == "random"
    assert student.meta["teacher"]["sha256"] == "0ab6b7a4312a94187078a631608d89f2d5ab8036e4469b4a56508cf27faf3e78"
    report = json.loads((run / "student_vs_teacher.json").read_text())
    assert report["images"] == 2 and report["macs_ratio"] > 10 and report["psnr_db_mean"] > 0
    assert (run / "samples" / "final.png").is_file()

    from cyclegan_edge.export.onnx_export import export_onnx
    from cyclegan_edge.export.report import FP32_TOLERANCE, parity_vs_torch
    from cyclegan_edge.imaging.io import load_test_images

    onnx_path = export_onnx(student, tmp_path / "student.onnx")
    parity = parity_vs_torch(student.model, onnx_path, load_test_images(data / "testA", 2))
    assert margin("student ONNX max abs vs PyTorch", parity["max_abs"], "<=", FP32_TOLERANCE) <= FP32_TOLERANCE


def test_resume_is_exact_and_teacher_init_copies_leading_channels(data: Path, tmp_path: Path) -> None:
    common = ["--dataroot", str(data), *TINY, "--output", str(tmp_path), "--save-every", "1"]
    whole = distill([*common, "--max-iters", "6", "--name", "whole"], tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = distill([*common, "--max-iters", "3", "--name", "split"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    rest = distill(["--dataroot", str(data), "--output", str(tmp_path), "--name", "split", "--resume", "--max-iters", "6",
                    "--workers", "0"], tmp_path)  # fmt: skip
    assert rest.returncode == 0, rest.stderr[-2000:]
    a = load_generator(tmp_path / "whole" / "student.pth").model.state_dict()
    b = load_generator(tmp_path / "split" / "student.pth").model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the run's training state is a generator file too (as a CycleGAN run's is): the student, A->B only
    from cyclegan_edge.models import CheckpointError

    state = tmp_path / "split" / "checkpoints" / "latest.pt"
    from_state = load_generator(state).model.state_dict()
    assert all(torch.equal(a[k], from_state[k]) for k in a) and from_state.keys() == a.keys()
    with pytest.raises(CheckpointError, match=r"latest.pt: training state with no B->A generator \(it holds A->B\)"):
        load_generator(state, direction="B->A")

    # --init teacher (the default): before any step, every student tensor is the teacher's leading slice
    from cyclegan_edge.models import ResnetGenerator, init_from_wider

    teacher = load_generator(COMPRESSED_G).model
    student = ResnetGenerator(load_generator(tmp_path / "whole" / "student.pth").config)
    assert init_from_wider(student, teacher)
    w_s, w_t = student.model[1].weight, teacher.model[1].weight
    assert torch.equal(w_s, w_t[:4]) and not np.allclose(w_t[4:8].detach().numpy(), 0)
    bad = distill(["--dataroot", str(data), "--output", str(tmp_path), "--name", "x", "--student", "resnet:64"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --student 'resnet:64'")
    short = distill(["--dataroot", str(data), "--output", str(tmp_path), "--name", "y", "--student", "mobile:8_8_16"],
                    tmp_path)  # fmt: skip
    assert short.returncode == 2 and short.stderr.strip().splitlines()[-1] == (
        "error: --student 'mobile:8_8_16': channels must be 8 positive ints, got (8, 8, 16)")


def test_a_six_block_teacher_teaches(data: Path, tmp_path: Path) -> None:
    """A resnet_6blocks teacher (what train --netG resnet_6blocks makes) failed at the first step, after an
    --overwrite had moved the earlier run aside: the features were taken where a 9-block trunk has them, past the
    end of this one's. A G_B2A.pth teacher's student said A->B, and evaluate --direction B->A refused it."""
    from cyclegan_edge.models import save_generator
    from cyclegan_edge.models.generator import resnet_6blocks

    torch.manual_seed(0)
    teacher = save_generator(tmp_path / "G_B2A.pth", resnet_6blocks(ngf=16), {"direction": "B->A"})
    r = distill(["--dataroot", str(data), *TINY, "--teacher", str(teacher), "--max-iters", "2", "--output",
                 str(tmp_path), "--name", "six"], tmp_path)  # fmt: skip
    assert r.returncode == 0 and "(its B->A generator, " in r.stderr, r.stderr[-2000:]
    student = load_generator(tmp_path / "six" / "student.pth")
    assert student.config.n_blocks == 6 and student.meta["direction"] == "B->A"
    assert load_generator(tmp_path / "six" / "student.pth", direction="B->A").meta["direction"] == "B->A"


def test_resume_refuses_a_teacher_that_changed(data: Path, tmp_path: Path) -> None:
    """Another teacher of the same shape at the --teacher path resumed without a word: the student learned from
    two teachers while its meta named only the second."""
    teacher = tmp_path / "teacher.pth"
    shutil.copy(COMPRESSED_G, teacher)
    cmd = [sys.executable, "-m", "cyclegan_edge.distill", "--teacher", str(teacher), "--dataroot", str(data), *TINY,
           "--output", str(tmp_path), "--name", "t"]  # fmt: skip
    env = {**os.environ, **ONE_THREAD}
    first = subprocess.run([*cmd, "--max-iters", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0 and f"teacher {teacher} (its only generator, " in first.stderr, first.stderr[-2000:]
    payload = torch.load(COMPRESSED_G, weights_only=True)
    weights = payload.get("state_dict", payload)
    torch.save({k: v * 1.01 if v.is_floating_point() else v for k, v in weights.items()}, teacher)
    r = subprocess.run([*cmd, "--max-iters", "2", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(
        f"error: --resume: --teacher {teacher} is not the teacher this run learned from"), r.stderr[-2000:]
    assert "give that file, or --overwrite starts the run over" in r.stderr
    shutil.copy(COMPRESSED_G, teacher)  # the run's own teacher back: it continues
    r = subprocess.run([*cmd, "--max-iters", "2", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "resumed from" in r.stderr, r.stderr[-2000:]


def test_report_folder_student_size_and_bad_held_out_images(data: Path, tmp_path: Path) -> None:
    """A missing --eval-a is a usage line before any work; without held-out images (--a/--b data) the run says, at
    its start and its end, that no report is written; a student bigger than its teacher is named; an unreadable
    held-out image is skipped with a warning, not the end of the report."""
    out = tmp_path / "runs"
    missing = distill(["--dataroot", str(data), *TINY, "--eval-a", "nowhere", "--max-iters", "1", "--output", str(out)],
                      tmp_path)  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith(
        f"error: --eval-a {tmp_path / 'nowhere'}: no such folder") and not out.exists()
    (tmp_path / "empty").mkdir()  # it trained to the end, then failed, and --resume kept the flag
    empty = distill(["--dataroot", str(data), *TINY, "--eval-a", "empty", "--max-iters", "1", "--output", str(out)],
                    tmp_path)  # fmt: skip
    assert empty.returncode == 2 and empty.stderr.strip().splitlines()[-1].startswith(
        f"error: --eval-a {tmp_path / 'empty'}: holds no image files (.bmp, ") and not out.exists()

    big = distill(["--a", str(data / "trainA"), "--b", str(data / "trainB"), *TINY, "--student",
                   "mobile:32_32_64_32_64_64_32_32", "--init", "random", "--max-iters", "1", "--output", str(out),
                   "--name", "big"], tmp_path)  # fmt: skip
    assert big.returncode == 0, big.stderr[-2000:]
    assert big.stderr.count("no student_vs_teacher.json: the data is --a/--b, without a testA/") == 2
    assert "is not smaller than the teacher" in big.stderr and not (out / "big" / "student_vs_teacher.json").exists()

    held_out = tmp_path / "held_out"
    shutil.copytree(data / "testA", held_out)
    (held_out / "0_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    r = distill(["--dataroot", str(data), *TINY, "--eval-a", str(held_out), "--eval-count", "2", "--max-iters", "1",
                 "--output", str(out), "--name", "ok"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipped:" in r.stderr and "0_broken.jpg" in r.stderr and "is not smaller" not in r.stderr
    report = json.loads((out / "ok" / "student_vs_teacher.json").read_text())
    assert report["images"] == 2 and report["macs_ratio"] > 1

    # A teacher that cannot be one is one line naming the flag (exit 1: bad input, as a bad model is for every
    # command), before --overwrite moves the finished run aside; NaN weights too (they failed at iteration 1).
    runs_before = sorted(p.name for p in out.iterdir())
    payload = torch.load(ASSETS_DIR / "photo2monet.pth", weights_only=True)
    nan = tmp_path / "nan.pth"
    torch.save({**payload, "state_dict": {k: v * float("nan") if v.is_floating_point() else v
                                          for k, v in payload["state_dict"].items()}}, nan)  # fmt: skip
    cut = tmp_path / "cut.pth"
    torch.save({**payload, "state_dict": dict(list(payload["state_dict"].items())[:-1])}, cut)
    for teacher, why in ((ASSETS_DIR / "photo2monet.onnx", "an ONNX model holds no trainable checkpoint"),
                         (tmp_path / "gone.pth", "no such file"),
                         (nan, "84 weight tensors hold NaN/Inf values (first: "),
                         (cut, "keys or shapes do not match ")):  # fmt: skip
        r = distill(["--dataroot", str(data), *TINY, "--teacher", str(teacher), "--max-iters", "1", "--output", str(out),
                     "--name", "ok", "--overwrite"], tmp_path)  # fmt: skip
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(f"error: --teacher {teacher}: {why}")
        assert "[" not in r.stderr.strip().splitlines()[-1], r.stderr  # no Python list of PyTorch's text
    assert sorted(p.name for p in out.iterdir()) == runs_before
    assert json.loads((out / "ok" / "student_vs_teacher.json").read_text()) == report
