"""Parameter and MAC counts.

Convention: one multiply-accumulate per weight use. A Conv2d costs
``out_pixels * out_channels * (in_channels / groups) * kh * kw``; a ConvTranspose2d is counted
per *output* pixel the same way, as in the literature's 56.8 G for resnet_9blocks at 256x256
(this overcounts the transposed conv by its stride squared, but keeps figures comparable).
Norms, activations, padding and bias adds are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    input_hw: tuple[int, int]

    def __str__(self) -> str:
        h, w = self.input_hw
        return f"{self.params / 1e6:.3f} M params, {self.macs / 1e9:.2f} GMACs at {h}x{w}"


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, height: int = 256, width: int = 256, in_channels: int = 3) -> Complexity:
    macs = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
        kh, kw = m.kernel_size
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return Complexity(params=count_params(model), macs=macs, input_hw=(height, width))
