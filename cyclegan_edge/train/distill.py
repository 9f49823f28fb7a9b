"""Distillation (GAN Compression's ResNet distiller, Li et al. CVPR 2020): a small student generator learns
to reproduce a big teacher's outputs.

Student loss = lambda_recon * L1(student(A), teacher(A))
             + lambda_distill * sum over four trunk points of MSE(1x1 conv(student feature), teacher feature)
             + lambda_gan * LSGAN(D(student(A)))  with D trained against real domain-B images.
Defaults are those of GAN Compression's horse2zebra script (scripts/cycle_gan/horse2zebra/distill.sh:
--lambda_recon 10 --lambda_distill 0.01, lambda_gan 1, lsgan). Everything else (data, DDP, AMP, exact resume,
atomic checkpoints, logs, sample grids) is the CycleGAN trainer's machinery, reused through its hooks.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cyclegan_edge.atomic import sha256_file, write_json
from cyclegan_edge.errors import UsageError
from cyclegan_edge.models import (
    CheckpointError,
    LoadedGenerator,
    NLayerDiscriminator,
    ResnetGenerator,
    count_macs,
    init_from_wider,
    init_normal,
    load_generator,
    nonfinite_weights,
    parse_channels,
    save_generator,
)
from cyclegan_edge.models.checkpoint import DISTILL_STATE_FORMAT, state_entry
from cyclegan_edge.models.generator import GeneratorConfig
from cyclegan_edge.train.config import DistillConfig
from cyclegan_edge.train.cyclegan import gan_loss
from cyclegan_edge.train.dist import launched_as_main
from cyclegan_edge.train.trainer import Trainer

log = logging.getLogger("cyclegan_edge.train")
STEM_LAYERS = 10  # ResnetGenerator.model's layers before its first residual block


def feature_points(n_blocks: int) -> tuple[int, ...]:
    """Where the student matches the teacher's features (indices in ResnetGenerator.model): the downsampling stem's
    output and that of the blocks a third, two thirds and all the way through (blocks 3, 6 and 9 of 9; 2, 4, 6 of
    6). It was (9, 12, 15, 18) for any teacher: past a 6-block trunk, in the upsampling, and the first step failed."""
    return tuple(sorted({STEM_LAYERS - 1 + n_blocks * k // 3 for k in range(4)}))


class StudentWithMaps(nn.Module):
    """The student and the 1x1 convs mapping its trunk features to the teacher's widths: one module, so one
    DDP wrapper and one optimizer hold everything the student side learns."""

    def __init__(self, student: ResnetGenerator, teacher_width: int) -> None:
        super().__init__()
        self.student = student
        width = student.cfg.trunk_width
        self.maps = nn.ModuleList(nn.Conv2d(width, teacher_width, 1) for _ in feature_points(student.cfg.n_blocks))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out, feats = run_with_features(self.student, x)
        return out, [m(f) for m, f in zip(self.maps, feats)]


def run_with_features(g: ResnetGenerator, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    feats, points = [], feature_points(g.cfg.n_blocks)
    h = x.clamp(-1.0, 1.0)
    for i, layer in enumerate(g.model):
        h = layer(h)
        if i in points:
            feats.append(h)
    return h, feats


def student_config(spec: str, teacher: GeneratorConfig) -> GeneratorConfig:
    kind, _, channels = spec.partition(":")
    if kind != "mobile" or not channels:
        raise UsageError(f"--student {spec!r}: expected mobile:C0_C1_..._C7, e.g. mobile:8_8_16_8_16_16_8_8")
    try:
        return GeneratorConfig(channels=parse_channels(channels), n_blocks=teacher.n_blocks, separable=True,
                               upsample=teacher.upsample)  # fmt: skip
    except ValueError as e:
        raise UsageError(f"--student {spec!r}: {e}") from None


class TeacherError(ValueError):
    """A --teacher file that cannot teach (unreadable, not a ResNet generator, NaN/Inf weights): exit 1, one line."""


def load_teacher(path: str) -> LoadedGenerator:
    """The --teacher file's ResNet generator; TeacherError (one line naming the flag) when it cannot be one."""
    if not path:
        raise UsageError("--teacher T.pth is required")
    try:
        loaded = load_generator(path)
    except CheckpointError as e:
        raise TeacherError(f"--teacher {e}") from None
    if not isinstance(loaded.model, ResnetGenerator) or not isinstance(loaded.config, GeneratorConfig):
        raise TeacherError(f"--teacher {path}: {loaded.config.name}; distillation takes a ResNet teacher")
    bad = nonfinite_weights(loaded.model)
    if bad:
        raise TeacherError(f"--teacher {path}: {len(bad)} weight tensors hold NaN/Inf values (first: {bad[0]}); "
                           "a student cannot learn from it: nothing trained")  # fmt: skip
    return loaded


class Distiller(Trainer):
    GRID_ROWS = (("real_A", "teacher", "student"),)
    STATE_FORMAT = DISTILL_STATE_FORMAT
    GENERATOR_FILES = ("student.pth",)

    def build(self) -> tuple[nn.Module, nn.Module]:
        cfg = self.cfg
        assert isinstance(cfg, DistillConfig)
        loaded = load_teacher(cfg.teacher)
        assert isinstance(loaded.model, ResnetGenerator) and isinstance(loaded.config, GeneratorConfig)
        self.teacher_source = {"path": str(Path(cfg.teacher).resolve()), "sha256": loaded.sha256 or sha256_file(cfg.teacher),
                               "arch": loaded.config.to_dict()}  # fmt: skip
        self.teacher = loaded.model.to(self.device).eval().requires_grad_(False)
        self.teacher_direction = str(loaded.meta.get("direction", ""))
        self.g_cfg = student_config(cfg.student, loaded.config)
        student = ResnetGenerator(self.g_cfg)
        init_normal(student)
        self.init_used = cfg.init == "teacher" and init_from_wider(student, loaded.model)
        wrapped = StudentWithMaps(student, loaded.config.trunk_width)
        init_normal(wrapped.maps)
        disc = NLayerDiscriminator(self.g_cfg.output_nc, cfg.ndf, cfg.n_layers_D)
        init_normal(disc)
        self.student, self.student_ddp = self.to_device(wrapped, cfg.compile)
        self.disc, self.disc_ddp = self.to_device(disc)
        return self.student, self.disc

    def model_state(self) -> dict[str, Any]:
        return {"generators": {"student": state_entry(self.student.student)},
                "maps": self.student.maps.state_dict(), "discriminators": self.disc.state_dict(),
                "teacher": self.teacher_source}  # fmt: skip

    def check_same_inputs(self, state: dict[str, Any]) -> None:
        """The teacher's bytes are the run's: another file of the same shape would resume silently, and the student
        would learn from two teachers while its meta names only the last."""
        saved, now = state.get("teacher") or {}, str(self.teacher_source["sha256"])
        if saved.get("sha256") and saved["sha256"] != now:
            raise CheckpointError(f"--resume: --teacher {self.teacher_source['path']} is not the teacher this run "
                                  f"learned from ({saved.get('path')}, sha256 {saved['sha256'][:12]}...; this file's "
                                  f"{now[:12]}...): give that file, or --overwrite starts the run over")  # fmt: skip

    def load_model_state(self, s: dict[str, Any]) -> None:
        self.student.student.load_state_dict(s["generators"]["student"]["state_dict"])
        self.student.maps.load_state_dict(s["maps"])
        self.disc.load_state_dict(s["discriminators"])

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        assert isinstance(cfg, DistillConfig)
        real_a = batch["A"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        real_b = batch["B"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with torch.no_grad(), self.autocast():
            teacher_out, teacher_feats = run_with_features(self.teacher, real_a)

        self.disc.requires_grad_(False)
        with self.autocast():
            out, feats = self.student_ddp(real_a)
            losses = {
                "G_gan": cfg.lambda_gan * gan_loss(self.disc(out), True, cfg.gan_mode),
                "recon": cfg.lambda_recon * F.l1_loss(out, teacher_out),
                "distill": cfg.lambda_distill * torch.stack([F.mse_loss(f, t) for f, t in zip(feats, teacher_feats)]).sum(),
            }
            loss_g = sum(losses.values())
        assert isinstance(loss_g, torch.Tensor)
        self.apply(self.opt_g, loss_g)

        self.disc.requires_grad_(True)
        with self.autocast():
            loss_d = 0.5 * (gan_loss(self.disc_ddp(real_b), True, cfg.gan_mode)
                            + gan_loss(self.disc_ddp(out.detach()), False, cfg.gan_mode))  # fmt: skip
        self.apply(self.opt_d, loss_d)
        self.scaler.update()

        self.last_images = {"real_A": real_a, "teacher": teacher_out, "student": out.detach()}
        return {k: float(v.detach()) for k, v in {**losses, "D": loss_d}.items()}

    def meta(self) -> dict[str, Any]:
        # the teacher's direction: a G_B2A.pth teaches B->A (given with --a/--b swapped), and so the student maps
        return {**super().meta(), "direction": getattr(self, "teacher_direction", "") or "A->B",
                "teacher": getattr(self, "teacher_source", None),
                "init": "teacher" if getattr(self, "init_used", False) else "random"}  # fmt: skip

    def save_generators(self) -> None:
        if self.d.main:
            save_generator(self.run_dir / self.GENERATOR_FILES[0], self.student.student, self.meta())

    def write_config(self) -> None:
        super().write_config()
        size = self.cfg.crop_size
        teacher, student = count_macs(self.teacher, size, size), count_macs(self.student.student, size, size)
        start = ("from the checkpoint (--resume)" if self.loaded_checkpoint else
                 "teacher's leading channels" if self.init_used else "random")  # fmt: skip
        # a training state holds both directions and teaches its A->B; a G_B2A.pth (with --a/--b swapped) the other
        direction = f"its {self.teacher_direction} generator" if self.teacher_direction else "its only generator"
        log.info("teacher %s (%s, %s); student init: %s", self.teacher_source["path"], direction, teacher, start)
        if student.macs >= teacher.macs:
            log.warning("--student %s is not smaller than the teacher (%s vs %s): distillation makes a smaller "
                        "model from a bigger one", self.g_cfg.name, student, teacher)  # fmt: skip


def held_out_images(cfg: DistillConfig) -> tuple[str, str]:
    """The folder of the final student-vs-teacher report, or why there is none; --eval-a must hold images (checked
    before the training: an error after it would leave the run without its report, and --resume keeps the flag)."""
    from cyclegan_edge.imaging.files import DataError, folder_image_files, list_files

    if cfg.eval_a:
        try:
            folder_image_files(cfg.eval_a, what="held-out domain-A images for the final report")
        except DataError as e:
            raise UsageError(f"--eval-a {e}") from None
        return cfg.eval_a, ""
    test_a = Path(cfg.dataroot) / "testA" if cfg.dataroot else None
    if test_a is not None and test_a.is_dir() and list_files([test_a]):
        return str(test_a), ""
    where = (f"{test_a} holds no image files" if test_a is not None and test_a.is_dir() else
             f"{test_a} does not exist" if test_a is not None else "the data is --a/--b, without a testA/")  # fmt: skip
    return "", f"no student_vs_teacher.json: {where}; --eval-a DIR names held-out domain-A images"


def fewer(ratio: float) -> str:
    return f"{ratio:.2f}x fewer" if ratio >= 1 else f"{1 / ratio:.2f}x more"


def compare_with_teacher(student_path: Path, teacher_path: str, images: list[np.ndarray], size: int) -> dict[str, Any]:
    """Student vs teacher on held-out images: output PSNR/SSIM, MACs and CPU latency of both (PyTorch, 1 image)."""
    from cyclegan_edge.imaging.quality import psnr, ssim
    from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frames
    from cyclegan_edge.imaging.resize import resized

    student, teacher = load_generator(student_path).model.eval(), load_generator(teacher_path).model.eval()
    frames = resized(images, (size, size))
    psnrs, ssims = [], []
    with torch.no_grad():
        for f in frames:
            x = torch.from_numpy(frames_to_tensor([f]))
            a, b = (tensor_to_frames(m(x).numpy())[0] for m in (teacher, student))
            psnrs.append(psnr(a, b))
            ssims.append(ssim(a, b))

    def latency_ms(m: nn.Module) -> float:
        x = torch.from_numpy(frames_to_tensor(frames[:1]))
        times = []
        with torch.no_grad():
            m(x)
            for _ in range(5):
                t0 = time.perf_counter()
                m(x)
                times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    macs = {name: count_macs(m, size, size).macs for name, m in (("teacher", teacher), ("student", student))}
    return {"images": len(frames), "size": size, "psnr_db_mean": float(np.mean(psnrs)), "psnr_db_min": float(np.min(psnrs)),
            "ssim_mean": float(np.mean(ssims)), "macs": macs, "macs_ratio": macs["teacher"] / macs["student"],
            "pytorch_cpu_latency_ms": {"teacher": latency_ms(teacher), "student": latency_ms(student)}}  # fmt: skip


def distill(cfg: DistillConfig) -> int:
    """Distill, then compare the student with the teacher on held-out images (student_vs_teacher.json)."""
    from cyclegan_edge.train.run_dir import run_lock, start_run

    eval_dir, no_report = held_out_images(cfg)
    teacher = load_teacher(cfg.teacher).config  # before start_run: a bad file must not cost an --overwrite its old run
    assert isinstance(teacher, GeneratorConfig)
    student_config(cfg.student, teacher)
    start_run(cfg)
    with run_lock(cfg):
        return distill_and_compare(cfg, eval_dir, no_report)


def distill_and_compare(cfg: DistillConfig, eval_dir: str, no_report: str) -> int:
    from cyclegan_edge.imaging.io import load_test_images

    if no_report and launched_as_main():
        log.warning("%s", no_report)
    distiller = Distiller(cfg)
    status = distiller.fit()
    report_file = cfg.run_dir / "student_vs_teacher.json"
    if status != 0 and distiller.d.main and report_file.is_file():  # the student was saved again, its report not
        log.warning("%s describes the student of an earlier run of this distillation, not the one saved now; "
                    "--resume to the end writes it again", report_file)  # fmt: skip
    if status != 0 or not distiller.d.main or (not distiller.trained and report_file.is_file()):
        return status
    if no_report:
        log.warning("%s", no_report)  # again where the run ends: the first one scrolled away
        return status
    report = compare_with_teacher(cfg.run_dir / "student.pth", cfg.teacher, load_test_images(eval_dir, cfg.eval_count),
                                  256)  # fmt: skip
    write_json(report_file, report)
    log.info("student vs teacher on %d held-out images at 256 px: PSNR %.2f dB (min %.2f), SSIM %.3f; "
             "MACs %s; PyTorch CPU %.1f vs %.1f ms", report["images"], report["psnr_db_mean"], report["psnr_db_min"],
             report["ssim_mean"], fewer(report["macs_ratio"]), report["pytorch_cpu_latency_ms"]["student"],
             report["pytorch_cpu_latency_ms"]["teacher"])  # fmt: skip
    return status
