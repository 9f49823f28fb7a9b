"""Training configuration: one dataclass, defaults equal to the CycleGAN paper / reference code.

argparse reads every option, its default, help and choices from the fields below. ``--resume`` takes
every setting from the run's ``config.json``; only the fields in ``MAY_CHANGE_ON_RESUME`` may be given
again with another value (a contradicting flag is an error that names both values).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cyclegan_edge.errors import ArgumentParser, HelpFormatter, UsageError, import_holding_ctrl_c
from cyclegan_edge.model_files import NETG_NAMES, UNET_DEPTHS, UNET_NORMS, UPSAMPLE_MODES

MODELS = ("cyclegan", "pix2pix")  # --model: the objective (pix2pix: train/pix2pix.py, its own flags)
RESUME_COMMANDS = {"cyclegan": "python -m cyclegan_edge.train", "pix2pix": "python -m cyclegan_edge.train",
                   "distill": "python -m cyclegan_edge.distill"}  # fmt: skip


def run_kind(settings: dict[str, Any]) -> str:
    """What a run's settings (its config.json) train: distill (a --teacher), else its --model."""
    return "distill" if "teacher" in settings else str(settings.get("model", "cyclegan"))


def opt(default: Any, help: str, choices: list[str] | None = None, flag: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "alias": flag})


@dataclass
class TrainConfig:
    HIDDEN: ClassVar[frozenset[str]] = frozenset()  # fields a subclass does not use (not offered as flags)

    model: str = opt("cyclegan", "objective: cyclegan (unpaired, G: A->B and F: B->A) or pix2pix (paired data, "
                     "one generator; --model pix2pix --help lists its flags)", list(MODELS))  # fmt: skip
    # data
    dataroot: str = opt("", "dataset root holding trainA/ and trainB/")
    a_dir: str = opt("", "folder of domain A images (instead of --dataroot)", flag="--a")
    b_dir: str = opt("", "folder of domain B images (instead of --dataroot)", flag="--b")
    preprocess: str = opt("resize_and_crop", "how training images are scaled and cropped",
                          ["resize_and_crop", "crop", "scale_width", "none"])  # fmt: skip
    load_size: int = opt(286, "images are first scaled to this size")
    crop_size: int = opt(256, "then randomly cropped to this size (the training resolution)")
    flip: bool = opt(True, "random horizontal flips")
    max_images: int = opt(0, "use at most this many images per domain (0 = all)")
    workers: int = opt(2, "DataLoader worker processes")
    # model
    netG: str = opt("resnet_9blocks", "generator: classic ResNet or GAN Compression's mobile one", list(NETG_NAMES))
    ngf: int = opt(64, "classic generators: channel width")
    mobile_config: str = opt("16_16_32_16_32_32_16_16", "mobile generator: channel config c0_..._c7")
    upsample: str = opt("bilinear", "generator upsampling: resize-conv (bilinear/nearest x2 + 3x3 conv: no "
                        "checkerboard) or the published ConvTranspose layers", list(UPSAMPLE_MODES))  # fmt: skip
    init_from: str = opt("", "start both generators from this generator file (fine-tuning a trained model, e.g. a "
                         "published one): its leading channels where it is wider, upsampling layers rewritten for "
                         "--upsample; empty: CycleGAN's random init")  # fmt: skip
    ndf: int = opt(64, "discriminator channel width")
    n_layers_D: int = opt(3, "discriminator conv layers (3 = the 70x70 PatchGAN)")
    # recipe
    gan_mode: str = opt("lsgan", "adversarial loss", ["lsgan", "vanilla"])
    lambda_cycle: float = opt(10.0, "weight of the cycle-consistency L1 loss")
    lambda_identity: float = opt(0.5, "weight of the identity loss, relative to lambda_cycle (0 = off)")
    pool_size: int = opt(50, "image pool of generated images shown to the discriminators (0 = off)")
    lr: float = opt(2e-4, "Adam learning rate")
    beta1: float = opt(0.5, "Adam beta1")
    n_epochs: int = opt(100, "epochs at the initial learning rate")
    n_epochs_decay: int = opt(100, "epochs of linear decay to zero")
    batch_size: int = opt(1, "images per step and process")
    max_iters: int = opt(0, "stop after this many iterations in total (0 = run all epochs)")
    # speed
    amp: bool = opt(True, "mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler)")
    channels_last: bool = opt(True, "channels_last memory format on CUDA")
    compile: bool = opt(False, "torch.compile the generators")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    # bookkeeping
    name: str = opt("run", "run name: outputs go to OUTPUT/NAME")
    output: str = opt("runs", "folder holding the runs", flag="-o")
    seed: int = opt(0, "seed for weights, data order and augmentation")
    save_every: int = opt(1000, "iterations between checkpoints (one is also written at every epoch end)")
    sample_every: int = opt(500, "iterations between PNG sample grids")
    log_every: int = opt(10, "iterations between progress-bar loss updates (log.csv gets every iteration)")
    resume: bool = opt(False, "continue OUTPUT/NAME from its checkpoint, with the settings in its config.json")
    overwrite: bool = opt(False, "start OUTPUT/NAME over: the old run is moved aside (and named), not deleted")

    @property
    def run_dir(self) -> Path:
        return Path(self.output) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings a resumed run may change: how long it runs and how it logs, not what it trains.
MAY_CHANGE_ON_RESUME = frozenset({"max_iters", "save_every", "sample_every", "log_every", "workers", "device",
                                  "amp", "channels_last", "compile", "resume", "overwrite", "output", "name"})  # fmt: skip


RUN_NAMING = frozenset({"resume", "overwrite", "output", "name"})  # which run, not how it trains: not "may change"
PROG = "python -m cyclegan_edge.train"
MIN_GENERATOR_SIDE = 8  # reflection padding after two halvings


def min_train_side(cfg: TrainConfig) -> int:
    """The shortest image side training can take: the PatchGAN discriminator's last two 4x4 convs need at least
    3 x 3 cells after its ``n_layers_D`` halvings (24 px for the default 3), the generators 8 px."""
    return max(MIN_GENERATOR_SIDE, 3 * 2**cfg.n_layers_D)


DESCRIPTION = "Train CycleGAN generators G: A->B and F: B->A (torchrun for several GPUs/processes)."


def build_parser(defaults: bool = True, cls: type[TrainConfig] = TrainConfig, prog: str = PROG,
                 description: str = DESCRIPTION) -> argparse.ArgumentParser:  # fmt: skip
    """With ``defaults=False`` every option defaults to SUPPRESS: parsing then yields only what was given."""
    ap = ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter,
                                 argument_default=None if defaults else argparse.SUPPRESS)  # fmt: skip
    for f in dataclasses.fields(cls):
        if f.name in cls.HIDDEN:
            continue
        flags = [flag(f.name)] + ([f.metadata["alias"]] if f.metadata.get("alias") else [])
        kw: dict[str, Any] = {"help": f.metadata["help"]}
        if defaults:
            kw["default"] = f.default
        if isinstance(f.default, bool):
            ap.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        else:
            ap.add_argument(*flags, type=type(f.default), choices=f.metadata.get("choices"), **kw)
    return ap


# The least value of each numeric flag (a subclass's too): below it a run fails later, or means nothing.
MINIMUM = {"batch_size": 1, "save_every": 1, "sample_every": 1, "log_every": 1, "ndf": 1, "n_layers_D": 1,
           "eval_count": 1, "n_epochs": 0, "n_epochs_decay": 0, "max_iters": 0, "max_images": 0, "workers": 0,
           "pool_size": 0, "lr": 0, "lambda_cycle": 0, "lambda_identity": 0, "lambda_l1": 0, "lambda_recon": 0,
           "lambda_distill": 0, "lambda_gan": 0}  # fmt: skip


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def typed_flag(cfg: TrainConfig, key: str) -> str:
    """The flag of setting ``key`` as users type it: its alias where it has one (a_dir: --a)."""
    alias = next((f.metadata.get("alias") for f in dataclasses.fields(cfg) if f.name == key), None)
    return alias or flag(key)


def parse_config(argv: list[str] | None = None, cls: type[TrainConfig] = TrainConfig, prog: str = PROG,
                 description: str = DESCRIPTION) -> TrainConfig:  # fmt: skip
    cfg = cls(**vars(build_parser(True, cls, prog, description).parse_args(argv)))
    check_command(cfg)
    check_generator_flags(cfg)
    if cfg.resume:  # the values to check are the run's, with what may change taken from the command line
        cfg = resumed_config(cfg.run_dir, vars(build_parser(False, cls, prog, description).parse_args(argv)), cls)
    else:
        for key in PATH_SETTINGS:  # absolute: --resume works from any folder
            if getattr(cfg, key, ""):
                setattr(cfg, key, str(Path(getattr(cfg, key)).resolve()))
    check_values(cfg)
    return cfg


def check_command(cfg: TrainConfig) -> None:
    """Flags that contradict each other: one usage line, before any work."""
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run, --overwrite starts it over: give one of them")
    if not (cfg.resume or cfg.dataroot or cfg.a_dir or cfg.b_dir):
        raise UsageError("no data: give --dataroot ROOT or --a DIR --b DIR (--help says what each holds)")
    if cfg.dataroot and (cfg.a_dir or cfg.b_dir):
        raise UsageError(f"--dataroot {cfg.dataroot} and --a/--b name the data twice: give one of them")
    if cfg.a_dir and cfg.b_dir and Path(cfg.a_dir).resolve() == Path(cfg.b_dir).resolve():
        raise UsageError(f"--a and --b are the same folder ({cfg.a_dir}): the model learns a mapping between two")
    if cfg.name in ("", ".", "..") or Path(cfg.name).name != cfg.name:
        raise UsageError(f"--name {cfg.name!r}: a plain folder name (no / or ..); the run goes to --output/NAME")


def check_values(cfg: TrainConfig) -> None:
    """Values that cannot make a run: one usage line naming the flags, before any work."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison below
            raise UsageError(f"{flag(f.name)} {value}: must be a finite number")
        least = MINIMUM.get(f.name)
        if least is not None and f.name not in cfg.HIDDEN and getattr(cfg, f.name) < least:
            raise UsageError(f"{flag(f.name)} {getattr(cfg, f.name)}: must be at least {least}")
    if not 0 <= cfg.beta1 < 1:
        raise UsageError(f"--beta1 {cfg.beta1}: Adam's beta1 must be in [0, 1)")
    if not 0 <= cfg.seed < 2**32:  # numpy's seeds; -1 failed in the data workers, and the run kept it for --resume
        raise UsageError(f"--seed {cfg.seed}: use 0..{2**32 - 1}")
    if cfg.n_epochs + cfg.n_epochs_decay < 1:
        raise UsageError("--n-epochs 0 --n-epochs-decay 0: nothing to train (at least one epoch)")
    least = min_train_side(cfg)
    if cfg.crop_size < least or cfg.load_size < least:
        raise UsageError(f"--crop-size {cfg.crop_size} / --load-size {cfg.load_size}: training needs at least {least} "
                         f"px (the discriminator's {cfg.n_layers_D} halvings, --n-layers-D; the generators need "
                         f"{MIN_GENERATOR_SIDE})")  # fmt: skip
    if cfg.preprocess == "resize_and_crop" and cfg.crop_size > cfg.load_size:
        raise UsageError(f"--crop-size {cfg.crop_size} > --load-size {cfg.load_size}: images are scaled to "
                         "--load-size, then cropped: the crop must fit")  # fmt: skip


def check_generator_flags(cfg: TrainConfig) -> None:
    """A malformed --mobile-config or --ngf is one usage line naming the flag, before any run folder is touched."""
    if "netG" in cfg.HIDDEN:
        return
    if cfg.ngf < 1:
        raise UsageError(f"--ngf {cfg.ngf}: must be a positive channel width")
    if cfg.netG == "mobile":
        import_holding_ctrl_c(("torch",))  # not before: --help and usage errors need no torch
        from cyclegan_edge.models.generator import named_config

        try:
            named_config(cfg.netG, cfg.ngf, cfg.mobile_config, cfg.upsample)
        except ValueError as e:
            raise UsageError(f"--mobile-config {cfg.mobile_config}: {e} (e.g. 16_16_32_16_32_32_16_16)") from None


PATH_SETTINGS = frozenset({"dataroot", "a_dir", "b_dir", "init_from", "teacher", "eval_a"})  # a subclass's too


def same_setting(key: str, saved: Any, given: Any) -> bool:
    """Equal, or (paths) naming the same file: --init-from is saved absolute, and may be typed relative again."""
    if saved == given:
        return True
    return key in PATH_SETTINGS and bool(saved) and bool(given) and Path(saved).resolve() == Path(given).resolve()


def resumed_config(run_dir: Path, given: dict[str, Any], cls: type[TrainConfig] = TrainConfig) -> TrainConfig:
    """The run's saved settings, with the flags that may change taken from the command line."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {run_dir} holds no run (no {path.name})")
    try:
        saved = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e}); --overwrite starts the run over") from None
    if "no_flip" in saved:  # runs written before --flip/--no-flip
        saved["flip"] = not saved.pop("no_flip")
    known = {f.name for f in dataclasses.fields(cls)}
    theirs, mine = run_kind(saved), run_kind({f.name: f.default for f in dataclasses.fields(cls)})
    if theirs != mine and "model" in given and RESUME_COMMANDS.get(theirs) == RESUME_COMMANDS.get(mine):
        raise UsageError(f"--resume: {run_dir} is a {theirs} run, not {mine}: drop --model {mine} (a resumed run "
                         "keeps its own)")  # fmt: skip
    if theirs != mine:
        raise UsageError(f"--resume: {run_dir} is a {theirs} run, not {mine}: continue it with "
                         f"{RESUME_COMMANDS.get(theirs, 'the command that started it')} --resume")  # fmt: skip
    settings = {k: v for k, v in saved.items() if k in known}
    for key, value in given.items():
        if key in MAY_CHANGE_ON_RESUME:
            settings[key] = value
        elif key in settings and not same_setting(key, settings[key], value):
            raise UsageError(f"--resume: {flag(key)} {value} contradicts the run's {settings[key]} ({path}); "
                             f"only {', '.join(sorted(flag(k) for k in MAY_CHANGE_ON_RESUME - RUN_NAMING))} may "
                             "change")  # fmt: skip
    settings.update(resume=True, overwrite=False, output=str(run_dir.parent), name=run_dir.name)
    return cls(**settings)


@dataclass
class DistillConfig(TrainConfig):
    # the teacher and --student define the generators; the cycle objective is not used
    HIDDEN: ClassVar[frozenset[str]] = frozenset({"model", "netG", "ngf", "mobile_config", "upsample", "lambda_cycle",
                                                   "lambda_identity", "pool_size", "init_from"})  # fmt: skip
    teacher: str = opt("", "the teacher generator (.pth: ours, published or a training state)")
    student: str = opt("mobile:8_8_16_8_16_16_8_8", "student: mobile:C0_..._C7 (GAN Compression channel config)")
    init: str = opt("teacher", "student weights: the teacher's first channels (shapes allow it within one family) "
                    "or random (CycleGAN's normal init)", ["teacher", "random"])  # fmt: skip
    lambda_recon: float = opt(10.0, "L1 between student and teacher outputs")
    lambda_distill: float = opt(0.01, "MSE between mapped student and teacher trunk features")
    lambda_gan: float = opt(1.0, "adversarial loss against real domain-B images")
    eval_a: str = opt("", "held-out domain-A images for the final student-vs-teacher report (empty: DATAROOT/testA)")
    eval_count: int = opt(16, "images in the final report")


def parse_distill_config(argv: list[str] | None = None) -> DistillConfig:
    cfg = parse_config(argv, DistillConfig, prog="python -m cyclegan_edge.distill",
                       description="Distill a teacher generator into a small student (GAN Compression).")  # fmt: skip
    assert isinstance(cfg, DistillConfig)
    return cfg


@dataclass
class Pix2PixConfig(TrainConfig):
    HIDDEN: ClassVar[frozenset[str]] = frozenset({"lambda_cycle", "lambda_identity", "pool_size", "init_from"})

    model: str = opt("pix2pix", "objective: cyclegan or pix2pix (this one)", list(MODELS))
    dataroot: str = opt("", "dataset root holding train/ (A|B side-by-side images) or trainA/ + trainB/ "
                        "(pairs by file name)")  # fmt: skip
    a_dir: str = opt("", "folder of A images (instead of --dataroot; paired with --b by file name)", flag="--a")
    b_dir: str = opt("", "folder of B images (instead of --dataroot)", flag="--b")
    netG: str = opt("unet_256", "generator: a U-Net (unet_N reaches 1x1 at N px: H and W multiples of N) or "
                    "a ResNet", list(UNET_DEPTHS) + list(NETG_NAMES))  # fmt: skip
    ngf: int = opt(64, "generator channel width (a U-Net's outermost block; 8*ngf at its core)")
    gan_mode: str = opt("vanilla", "adversarial loss", ["lsgan", "vanilla"])
    norm: str = opt("batch", "U-Net norm: batch (the reference pix2pix; inference uses its running statistics) "
                    "or instance", list(UNET_NORMS))  # fmt: skip
    dropout: bool = opt(True, "U-Net: Dropout(0.5) in the innermost 8*ngf blocks while training (the reference)")
    lambda_l1: float = opt(100.0, "weight of the L1 loss between G(A) and the paired B")
    direction: str = opt("AtoB", "AtoB: learn A->B; BtoA: learn B->A", ["AtoB", "BtoA"])


def parse_pix2pix_config(argv: list[str] | None = None) -> Pix2PixConfig:
    cfg = parse_config(argv, Pix2PixConfig, description="Train a pix2pix generator G: A->B on paired data "
                       "(torchrun for several GPUs/processes).")  # fmt: skip
    assert isinstance(cfg, Pix2PixConfig)
    return cfg
