"""The ResNet generator family of CycleGAN, classic and compressed ("mobile").

One class covers both, with state-dict keys identical to the published checkpoints:

* classic (Zhu et al. 2017): ``resnet_9blocks`` / ``resnet_6blocks`` with any ngf;
* mobile (GAN Compression, Li et al. 2020): separable convs in the residual blocks and a
  per-layer channel config such as ``16_16_32_16_32_32_16_16``.

Layout of ``model`` (one nn.Sequential, so keys are ``model.N.*``)::

    0 ReflectionPad(3)  1 Conv7x7 in->c0  2 IN  3 ReLU
    4 Conv3x3/2 c0->2*c1  5 IN  6 ReLU
    7 Conv3x3/2 2*c1->4*c2  8 IN  9 ReLU
    10 .. 10+n_blocks-1   residual blocks on 4*c2 channels
    then Up ->2*c6, IN, ReLU, Up ->c7, IN, ReLU, ReflectionPad(3), Conv7x7 c7->out, Tanh

A classic generator is the config with every c equal to ngf. ``Up`` is the published ConvTranspose3x3/2
(``upsample="convtranspose"``, keys ``model.N.weight``) or a resize-convolution (Odena et al. 2016:
nearest or bilinear x2, then Conv3x3; keys ``model.N.1.weight``), which cannot produce the checkerboard
pattern that strided transposed convolutions are prone to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from cyclegan_edge.model_files import NETG_NAMES, UPSAMPLE_MODES

CHANNEL_SLOTS = 8


@dataclass(frozen=True)
class GeneratorConfig:
    family: ClassVar[str] = "resnet"
    size_multiple: ClassVar[int] = 4  # H and W: two stride-2 downsamplings

    channels: tuple[int, ...]  # c0..c7, see the module docstring
    n_blocks: int = 9
    separable: bool = False  # GAN Compression's mobile blocks
    use_dropout: bool = False  # classic blocks only; mobile blocks always hold a Dropout slot
    input_nc: int = 3
    output_nc: int = 3
    upsample: str = "convtranspose"  # one of UPSAMPLE_MODES

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if len(self.channels) != CHANNEL_SLOTS or min(self.channels) < 1:
            raise ValueError(f"channels must be {CHANNEL_SLOTS} positive ints, got {self.channels}")
        if self.n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {self.n_blocks}")

    @property
    def trunk_width(self) -> int:
        return 4 * self.channels[2]

    def block_width(self, i: int) -> int:
        """Inner width of residual block i: 4*c3, 4*c4, 4*c5 over thirds of the trunk."""
        return 4 * self.channels[3 + (3 * i) // self.n_blocks]

    @property
    def name(self) -> str:
        up = "" if self.upsample == "convtranspose" else f"_{self.upsample}up"
        if self.separable:
            return f"mobile_resnet_{self.n_blocks}blocks_" + "_".join(map(str, self.channels)) + up
        if len(set(self.channels)) == 1:
            return f"resnet_{self.n_blocks}blocks_ngf{self.channels[0]}{up}"
        return f"resnet_{self.n_blocks}blocks_" + "_".join(map(str, self.channels)) + up

    def to_dict(self) -> dict[str, object]:
        return {
            "channels": list(self.channels),
            "n_blocks": self.n_blocks,
            "separable": self.separable,
            "use_dropout": self.use_dropout,
            "input_nc": self.input_nc,
            "output_nc": self.output_nc,
            "upsample": self.upsample,
            "size_multiple": self.size_multiple,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GeneratorConfig:
        known = {k: d[k] for k in ("n_blocks", "separable", "use_dropout", "input_nc", "output_nc", "upsample") if k in d}
        return cls(channels=tuple(int(c) for c in d["channels"]), **known)  # type: ignore[arg-type, attr-defined]


def _norm(channels: int) -> nn.InstanceNorm2d:
    # CycleGAN's InstanceNorm: no affine parameters, no running statistics.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class SeparableConv2d(nn.Module):
    """Depthwise 3x3, InstanceNorm, pointwise 1x1 (keys ``conv.0``, ``conv.2``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, in_ch, kernel_size, groups=in_ch, bias=True),
            _norm(in_ch),
            nn.Conv2d(in_ch, out_ch, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def upsample_x2(in_ch: int, out_ch: int, mode: str) -> nn.Module:
    if mode == "convtranspose":
        return nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=True)
    # align_corners=False: the same sampling grid as ONNX Resize's half_pixel and TensorRT's resize
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=True))


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, inner: int, separable: bool, dropout: float | None) -> None:
        super().__init__()

        def conv(i: int, o: int) -> nn.Module:
            return SeparableConv2d(i, o) if separable else nn.Conv2d(i, o, 3, bias=True)

        layers: list[nn.Module] = [nn.ReflectionPad2d(1), conv(dim, inner), _norm(inner), nn.ReLU(True)]
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), conv(inner, dim), _norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Input and output: RGB in [-1, 1], NCHW, H and W multiples of 4."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        trunk = cfg.trunk_width
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(cfg.input_nc, c[0], 7, bias=True), _norm(c[0]), nn.ReLU(True),
            nn.Conv2d(c[0], 2 * c[1], 3, stride=2, padding=1, bias=True), _norm(2 * c[1]), nn.ReLU(True),
            nn.Conv2d(2 * c[1], trunk, 3, stride=2, padding=1, bias=True), _norm(trunk), nn.ReLU(True),
        ]  # fmt: skip
        if cfg.separable:
            dropout: float | None = 0.5 if cfg.use_dropout else 0.0
        else:
            dropout = 0.5 if cfg.use_dropout else None
        for i in range(cfg.n_blocks):
            inner = cfg.block_width(i) if cfg.separable else trunk
            layers.append(ResnetBlock(trunk, inner, cfg.separable, dropout))
        layers += [
            upsample_x2(trunk, 2 * c[6], cfg.upsample), _norm(2 * c[6]), nn.ReLU(True),
            upsample_x2(2 * c[6], c[7], cfg.upsample), _norm(c[7]), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(c[7], cfg.output_nc, 7, bias=True), nn.Tanh(),
        ]  # fmt: skip
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The GAN Compression reference clamps its input; harmless for in-range inputs.
        return self.model(x.clamp(-1.0, 1.0))


def parse_channels(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """``"16_16_32_16_32_32_16_16"`` -> (16, 16, 32, 16, 32, 32, 16, 16)."""
    if isinstance(spec, str):
        try:
            return tuple(int(x) for x in spec.replace(",", "_").split("_") if x)
        except ValueError:
            raise ValueError(f"bad channel config {spec!r}: expected 8 ints joined by '_'") from None
    return tuple(int(x) for x in spec)


def named_config(netG: str, ngf: int = 64, mobile_config: str = "16_16_32_16_32_32_16_16",
                 upsample: str = "convtranspose") -> GeneratorConfig:
    """The config for a ``--netG`` name (see NETG_NAMES)."""
    if netG == "mobile":
        return GeneratorConfig(channels=parse_channels(mobile_config), n_blocks=9, separable=True, upsample=upsample)
    n_blocks = {"resnet_9blocks": 9, "resnet_6blocks": 6}.get(netG)
    if n_blocks is None:
        raise ValueError(f"unknown generator {netG!r}: one of {NETG_NAMES}")
    return GeneratorConfig(channels=(ngf,) * CHANNEL_SLOTS, n_blocks=n_blocks, upsample=upsample)


def resnet_9blocks(ngf: int = 64, **kw: object) -> ResnetGenerator:
    return ResnetGenerator(GeneratorConfig(channels=(ngf,) * CHANNEL_SLOTS, n_blocks=9, **kw))  # type: ignore[arg-type]


def resnet_6blocks(ngf: int = 64, **kw: object) -> ResnetGenerator:
    return ResnetGenerator(GeneratorConfig(channels=(ngf,) * CHANNEL_SLOTS, n_blocks=6, **kw))  # type: ignore[arg-type]


def mobile_resnet_9blocks(config: str | tuple[int, ...] = "16_16_32_16_32_32_16_16", **kw: object) -> ResnetGenerator:
    cfg = GeneratorConfig(channels=parse_channels(config), n_blocks=9, separable=True, **kw)  # type: ignore[arg-type]
    return ResnetGenerator(cfg)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """CycleGAN's init: conv weights ~ N(0, std), biases 0; BatchNorm (U-Nets) weights ~ N(1, std), biases 0
    (InstanceNorms have no parameters)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def upsampling_names(g: ResnetGenerator) -> list[str]:
    """Names of the two x2 upsampling layers in ``g.model`` ("19", "22" for nine blocks)."""
    def is_upsampling(m: nn.Module) -> bool:
        return isinstance(m, nn.ConvTranspose2d) or (isinstance(m, nn.Sequential) and isinstance(m[0], nn.Upsample))

    return [name for name, m in g.model.named_children() if is_upsampling(m)]


def state_for_upsampling(src: ResnetGenerator, dst_mode: str) -> dict[str, torch.Tensor]:
    """``src``'s weights with its upsampling layers rewritten for ``dst_mode``: a ConvTranspose3x3/2 kernel becomes
    the 3x3 conv after a x2 resize (in/out swapped and flipped: the same filter, applied to resized instead of
    zero-inserted input; the InstanceNorm after it absorbs the change of scale), and back. The weights of one
    published generator then start a resize-conv one (fine-tuning) without retraining its decoder from noise."""
    state = {k: v.detach().clone() for k, v in src.state_dict().items()}
    if (src.cfg.upsample == "convtranspose") == (dst_mode == "convtranspose"):
        return state  # nearest <-> bilinear: same layers
    to_resize = dst_mode != "convtranspose"
    for name in upsampling_names(src):
        for part in ("weight", "bias"):
            old, new = (f"model.{name}.{part}", f"model.{name}.1.{part}")[:: 1 if to_resize else -1]
            w = state.pop(old)
            state[new] = w.transpose(0, 1).flip(2, 3) if part == "weight" else w
    return state


def init_from_wider(dst: ResnetGenerator, src: ResnetGenerator) -> bool:
    """Copy ``src``'s leading channels into every ``dst`` tensor when each of its shapes fits inside ``src``'s (one
    family, equal or narrower; upsampling layers rewritten for ``dst``'s mode); False, and ``dst`` untouched,
    otherwise. Taking the first channels keeps the trunk's residual channels aligned across blocks, which an
    importance ranking per layer would break."""
    s = dst.state_dict()
    t = state_for_upsampling(src, dst.cfg.upsample)
    if s.keys() != t.keys() or any(v.dim() != t[k].dim() or any(a > b for a, b in zip(v.shape, t[k].shape))
                                   for k, v in s.items()):  # fmt: skip
        return False
    dst.load_state_dict({k: t[k][tuple(slice(0, n) for n in v.shape)] for k, v in s.items()})  # copies
    return True


def seeded_resnet_9blocks(seed: int = 0) -> ResnetGenerator:
    """resnet_9blocks with CycleGAN's init from a fixed seed: the classic generator for benchmarks, whose
    latency and numerical parity do not depend on trained weights. The caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet_9blocks()
        init_normal(model)
    return model
