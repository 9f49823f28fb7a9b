"""The U-Net generators of pix2pix (Isola et al. 2017): ``unet_256`` (depth 8), ``unet_128`` (depth 7), any ngf.

State-dict keys are the reference implementation's (pytorch-CycleGAN-and-pix2pix ``UnetGenerator``): the
generator's ``model`` is the outermost block, and every block keeps its layers in an nn.Sequential named
``model`` holding the next block inside it, so keys nest as ``model.model.1.model.3.model.3...``::

    outermost  0 Conv4x4/2 in->ngf   1 block   2 ReLU  3 ConvT4x4/2 2ngf->out (bias)  4 Tanh
    middle     0 LeakyReLU(0.2)  1 Conv4x4/2  2 norm  3 block  4 ReLU  5 ConvT4x4/2  6 norm  [7 Dropout(0.5)]
    innermost  0 LeakyReLU(0.2)  1 Conv4x4/2  2 ReLU  3 ConvT4x4/2  4 norm

Widths from the outside in: ngf, 2ngf, 4ngf, then 8ngf; every block but the outermost returns
``cat([x, block(x)])`` (the skip connection), and the depth - 5 innermost middle blocks hold the Dropout when
``use_dropout``. Convs carry a bias only under InstanceNorm (a BatchNorm's shift makes it redundant),
except the last ConvTranspose, which always has one.

Norm: ``batch`` (the reference pix2pix default: affine, running statistics) or ``instance`` (no affine, no
running statistics, as in our ResNets). With BatchNorm we infer in **eval mode** (running statistics),
like every exported graph: the reference tests pix2pix in train mode unless ``--eval`` (batch statistics of
the test batch, and active Dropout), which makes a frame's output depend on the frames batched with it and
cannot be folded into an ONNX/TensorRT graph. Our eval-mode output is deterministic and per-frame.

Size: the input halves ``depth`` times, so H and W must be multiples of ``2**depth`` (``size_multiple``:
256 for unet_256). In eager PyTorch the forward pads other sizes (frames.py's reflect rule, as a gather) and
crops back; exported graphs take multiples only, and the runtime backends pad to the ``size_multiple`` that
our checkpoints and ONNX metadata carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from cyclegan_edge.imaging.frames import pad_index, pad_mode, padded_size
from cyclegan_edge.model_files import UNET_DEPTHS, UNET_NORMS

MIN_DEPTH = 5  # outermost + ngf->2ngf->4ngf->8ngf + innermost


@dataclass(frozen=True)
class UnetConfig:
    family: ClassVar[str] = "unet"
    upsample: ClassVar[str] = "convtranspose"  # what tools that report a generator's upsampling print

    depth: int = 8
    ngf: int = 64
    norm: str = "batch"  # one of UNET_NORMS
    use_dropout: bool = False  # only matters in training: Dropout has no weights, eval mode turns it off
    input_nc: int = 3
    output_nc: int = 3

    def __post_init__(self) -> None:
        if self.depth < MIN_DEPTH:
            raise ValueError(f"U-Net depth must be >= {MIN_DEPTH}, got {self.depth}")
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        if self.norm not in UNET_NORMS:
            raise ValueError(f"norm must be one of {UNET_NORMS}, got {self.norm!r}")

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    @property
    def name(self) -> str:
        return f"unet_{self.size_multiple}_ngf{self.ngf}_{self.norm}"

    def to_dict(self) -> dict[str, object]:
        return {"family": self.family, "depth": self.depth, "ngf": self.ngf, "norm": self.norm,
                "use_dropout": self.use_dropout, "input_nc": self.input_nc, "output_nc": self.output_nc,
                "size_multiple": self.size_multiple}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> UnetConfig:
        known = ("depth", "ngf", "norm", "use_dropout", "input_nc", "output_nc")
        return cls(**{k: d[k] for k in known if k in d})  # type: ignore[arg-type]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class UnetBlock(nn.Module):
    """The reference UnetSkipConnectionBlock: down, the inner block, up; the input is concatenated to the
    output everywhere but in the outermost block."""

    def __init__(self, outer_nc: int, inner_nc: int, norm: str, input_nc: int | None = None,
                 inner: UnetBlock | None = None, outermost: bool = False, dropout: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            assert inner is not None
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1)
            layers: list[nn.Module] = [down, inner, nn.ReLU(True), up, nn.Tanh()]
        elif inner is None:  # innermost: no norm at the 1x1 bottleneck, nothing to concatenate below
            up = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, _norm(norm, outer_nc)]
        else:
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, _norm(norm, inner_nc), inner, nn.ReLU(True), up,
                      _norm(norm, outer_nc)] + ([nn.Dropout(0.5)] if dropout else [])  # fmt: skip
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """Input and output: RGB in [-1, 1], NCHW; H and W multiples of ``cfg.size_multiple`` (others are padded
    and cropped back in eager mode, see the module docstring)."""

    def __init__(self, cfg: UnetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, wide = cfg.ngf, 8 * cfg.ngf
        block = UnetBlock(wide, wide, cfg.norm)
        for _ in range(cfg.depth - MIN_DEPTH):
            block = UnetBlock(wide, wide, cfg.norm, inner=block, dropout=cfg.use_dropout)
        for outer in (4 * n, 2 * n, n):
            block = UnetBlock(outer, 2 * outer, cfg.norm, inner=block)
        self.model = UnetBlock(cfg.output_nc, n, cfg.norm, input_nc=cfg.input_nc, inner=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        ph, pw = padded_size(h, w, self.cfg.size_multiple)
        if (ph, pw) == (h, w):  # always so in exported graphs: the backends pad before them
            return self.model(x)
        mode = pad_mode(h, w, self.cfg.size_multiple)
        rows = torch.from_numpy(pad_index(h, ph, mode)).to(x.device)
        cols = torch.from_numpy(pad_index(w, pw, mode)).to(x.device)
        return self.model(x.index_select(2, rows).index_select(3, cols))[..., :h, :w]


def unet(depth: int, ngf: int = 64, **kw: object) -> UnetGenerator:
    return UnetGenerator(UnetConfig(depth=depth, ngf=ngf, **kw))  # type: ignore[arg-type]


def unet_256(ngf: int = 64, **kw: object) -> UnetGenerator:
    return unet(8, ngf, **kw)


def unet_128(ngf: int = 64, **kw: object) -> UnetGenerator:
    return unet(7, ngf, **kw)


def unet_config(netG: str, ngf: int = 64, norm: str = "batch", use_dropout: bool = False) -> UnetConfig:
    """The config for a ``--netG`` name (one of UNET_DEPTHS)."""
    if netG not in UNET_DEPTHS:
        raise ValueError(f"unknown U-Net {netG!r}: one of {tuple(UNET_DEPTHS)}")
    return UnetConfig(depth=UNET_DEPTHS[netG], ngf=ngf, norm=norm, use_dropout=use_dropout)
