"""The CycleGAN objective (Zhu et al. 2017), as small modules DDP can wrap.

One naming scheme, the reference implementation's: ``G_A`` maps A->B (the paper's G), ``G_B`` maps B->A (the
paper's F), ``D_A`` judges domain B and ``D_B`` domain A; files say the direction (``G_A2B.pth``, ``G_B2A.pth``),
and the training state keeps the reference keys. Both generators live in one module whose single forward computes every image
the losses need; the two PatchGAN discriminators live in another. One forward per DDP wrapper
per step keeps DistributedDataParallel's gradient sync simple and exact.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cyclegan_edge.models import NLayerDiscriminator, ResnetGenerator


class CycleGenerators(nn.Module):
    def __init__(self, g_a: ResnetGenerator, g_b: ResnetGenerator, use_identity: bool) -> None:
        super().__init__()
        self.G_A, self.G_B, self.use_identity = g_a, g_b, use_identity

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_b = self.G_A(real_a)
        fake_a = self.G_B(real_b)
        out = {"fake_B": fake_b, "rec_A": self.G_B(fake_b), "fake_A": fake_a, "rec_B": self.G_A(fake_a)}
        if self.use_identity:
            out["idt_A"] = self.G_A(real_b)  # G_A should leave B images unchanged
            out["idt_B"] = self.G_B(real_a)
        return out


class Discriminators(nn.Module):
    """D_A judges domain B (real_B vs G_A's fakes), D_B judges domain A, as in the reference code."""

    def __init__(self, input_nc: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        self.D_A = NLayerDiscriminator(input_nc, ndf, n_layers)
        self.D_B = NLayerDiscriminator(input_nc, ndf, n_layers)

    def forward(self, real_a: torch.Tensor, fake_a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor
                ) -> dict[str, torch.Tensor]:  # fmt: skip
        d_a_real, d_a_fake = judge(self.D_A, real_b, fake_b)
        d_b_real, d_b_fake = judge(self.D_B, real_a, fake_a)
        return {"D_A_real": d_a_real, "D_A_fake": d_a_fake, "D_B_real": d_b_real, "D_B_fake": d_b_fake}


def judge(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D on real and fake images: in one batch where their sizes agree; apart where they do not (--preprocess
    none keeps each image's size, and the image pool returns fakes of earlier images)."""
    if real.shape[1:] != fake.shape[1:]:
        return d(real), d(fake)
    pred = d(torch.cat([real, fake]))
    return pred[: real.shape[0]], pred[real.shape[0] :]


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
    if mode == "lsgan":
        return F.mse_loss(pred.float(), target.float())
    return F.binary_cross_entropy_with_logits(pred.float(), target.float())


def generator_losses(
    real_a: torch.Tensor, real_b: torch.Tensor, out: dict[str, torch.Tensor], d: Discriminators,
    mode: str, lambda_cycle: float, lambda_identity: float,
) -> dict[str, torch.Tensor]:  # fmt: skip
    losses = {
        "G_A": gan_loss(d.D_A(out["fake_B"]), True, mode),
        "G_B": gan_loss(d.D_B(out["fake_A"]), True, mode),
        "cycle_A": F.l1_loss(out["rec_A"].float(), real_a.float()) * lambda_cycle,
        "cycle_B": F.l1_loss(out["rec_B"].float(), real_b.float()) * lambda_cycle,
    }
    if "idt_A" in out:
        losses["idt_A"] = F.l1_loss(out["idt_A"].float(), real_b.float()) * lambda_cycle * lambda_identity
        losses["idt_B"] = F.l1_loss(out["idt_B"].float(), real_a.float()) * lambda_cycle * lambda_identity
    return losses


def discriminator_losses(pred: dict[str, torch.Tensor], mode: str) -> dict[str, torch.Tensor]:
    # Halved, as in the reference: slows D relative to G.
    return {
        "D_A": 0.5 * (gan_loss(pred["D_A_real"], True, mode) + gan_loss(pred["D_A_fake"], False, mode)),
        "D_B": 0.5 * (gan_loss(pred["D_B_real"], True, mode) + gan_loss(pred["D_B_fake"], False, mode)),
    }


def linear_decay(n_epochs: int, n_epochs_decay: int):  # type: ignore[no-untyped-def]
    """LR factor: 1 for n_epochs, then linearly to ~0 over n_epochs_decay (the reference rule)."""

    def rule(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    return rule
