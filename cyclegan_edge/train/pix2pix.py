"""pix2pix (Isola et al. CVPR 2017): paired translation, one generator G: A->B.

G loss = GAN(D(A, G(A)), real) + lambda_l1 * L1(G(A), B)
D loss = 0.5 * (GAN(D(A, B), real) + GAN(D(A, G(A)), fake))
D is the conditional PatchGAN: our 70x70 discriminator on the input and an output concatenated (6 channels).
Defaults are the reference pix2pix's (pytorch-CycleGAN-and-pix2pix ``pix2pix_model.py``): unet_256 with
BatchNorm and Dropout, vanilla GAN loss, lambda_L1 100, no image pool; like the reference, each step updates
D first, then G. Everything else (data order, DDP, AMP, exact resume, atomic checkpoints, logs, sample grids)
is the CycleGAN trainer's machinery, reused through its hooks.

Data: ``DATAROOT/train`` of A|B side-by-side images (the reference's aligned format), or two folders with
files of the same names (``DATAROOT/trainA`` + ``trainB``, or ``--a``/``--b``). ``--direction BtoA`` trains
B->A. The run writes ``G_A2B.pth`` (``G_B2A.pth`` for BtoA) in our generator format.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cyclegan_edge.errors import UsageError
from cyclegan_edge.models import (
    AnyGeneratorConfig,
    NLayerDiscriminator,
    build_generator,
    init_normal,
    named_config,
    save_generator,
)
from cyclegan_edge.models.checkpoint import DIRECTION_KEYS, PIX2PIX_STATE_FORMAT, state_entry
from cyclegan_edge.model_files import DIRECTION_ALIASES, UNET_DEPTHS
from cyclegan_edge.models.unet import unet_config
from cyclegan_edge.train.config import Pix2PixConfig
from cyclegan_edge.train.cyclegan import gan_loss
from cyclegan_edge.train.data import PairedDataset, paired_files
from cyclegan_edge.train.trainer import Trainer


def pix2pix_generator(cfg: Pix2PixConfig) -> AnyGeneratorConfig:
    """The generator --netG names; UsageError when --crop-size does not fit it (checked before the run starts)."""
    if cfg.netG in UNET_DEPTHS:
        g_cfg: AnyGeneratorConfig = unet_config(cfg.netG, cfg.ngf, cfg.norm, cfg.dropout)
    else:
        g_cfg = named_config(cfg.netG, cfg.ngf, cfg.mobile_config, cfg.upsample)
    m = g_cfg.size_multiple
    if cfg.preprocess in ("resize_and_crop", "crop") and cfg.crop_size % m:
        raise UsageError(f"--crop-size {cfg.crop_size} is not a multiple of {m}, which {cfg.netG} needs "
                         f"(it halves the size {m.bit_length() - 1} times)")  # fmt: skip
    return g_cfg


class Pix2Pix(Trainer):
    GRID_ROWS = (("real_A", "fake_B", "real_B"),)
    PAIRED = True
    STATE_FORMAT = PIX2PIX_STATE_FORMAT

    def __init__(self, cfg: Pix2PixConfig) -> None:
        self.GENERATOR_FILES = ("G_A2B.pth",) if cfg.direction == "AtoB" else ("G_B2A.pth",)
        super().__init__(cfg)

    @property
    def pix(self) -> Pix2PixConfig:
        assert isinstance(self.cfg, Pix2PixConfig)
        return self.cfg

    @property
    def arrow(self) -> str:
        return DIRECTION_ALIASES[self.pix.direction]

    def generator_config(self) -> AnyGeneratorConfig:
        return pix2pix_generator(self.pix)

    def make_dataset(self, show_progress: bool) -> PairedDataset:
        cfg = self.pix
        m = self.g_cfg.size_multiple
        return PairedDataset(paired_files(cfg, show_progress, m), cfg, m, cfg.direction == "BtoA")

    def build(self) -> tuple[nn.Module, nn.Module]:
        cfg = self.pix
        gen = build_generator(self.g_cfg)
        disc = NLayerDiscriminator(self.g_cfg.input_nc + self.g_cfg.output_nc, cfg.ndf, cfg.n_layers_D)
        init_normal(gen)
        init_normal(disc)
        self.gen, self.gen_ddp = self.to_device(gen, cfg.compile)
        self.disc, self.disc_ddp = self.to_device(disc)
        return self.gen, self.disc

    def grid_labels(self) -> list[list[str]]:
        """--direction BtoA feeds the pairs' B sides in: its grid reads real B | fake A | real A (it said A, B)."""
        labels = super().grid_labels()
        if self.pix.direction != "BtoA":
            return labels
        return [[text.translate(str.maketrans("AB", "BA")) for text in row] for row in labels]

    def model_state(self) -> dict[str, Any]:
        return {"generators": {DIRECTION_KEYS[self.arrow]: state_entry(self.gen)},
                "discriminators": self.disc.state_dict()}  # fmt: skip

    def load_model_state(self, s: dict[str, Any]) -> None:
        self.gen.load_state_dict(s["generators"][DIRECTION_KEYS[self.arrow]]["state_dict"])
        self.disc.load_state_dict(s["discriminators"])

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.pix
        real_a = batch["A"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        real_b = batch["B"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with self.autocast():
            fake_b = self.gen_ddp(real_a)

        # D step on (A, B) and (A, G(A)): one forward through the DDP wrapper
        self.disc.requires_grad_(True)
        with self.autocast():
            pairs = torch.cat([torch.cat([real_a, real_b], 1), torch.cat([real_a, fake_b.detach()], 1)])
            pred = self.disc_ddp(pairs)
            n = real_a.shape[0]
            d_losses = {"D_real": gan_loss(pred[:n], True, cfg.gan_mode), "D_fake": gan_loss(pred[n:], False, cfg.gan_mode)}
            loss_d = 0.5 * (d_losses["D_real"] + d_losses["D_fake"])
        self.apply(self.opt_d, loss_d)

        # G step against the updated D, frozen (called without its DDP wrapper: no gradients to sync)
        self.disc.requires_grad_(False)
        with self.autocast():
            g_losses = {"G_gan": gan_loss(self.disc(torch.cat([real_a, fake_b], 1)), True, cfg.gan_mode),
                        "G_L1": cfg.lambda_l1 * F.l1_loss(fake_b.float(), real_b.float())}  # fmt: skip
            loss_g = g_losses["G_gan"] + g_losses["G_L1"]
        self.apply(self.opt_g, loss_g)
        self.scaler.update()

        self.last_images = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        return {k: float(v.detach()) for k, v in {**g_losses, **d_losses}.items()}

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "direction": self.arrow, "model": "pix2pix"}

    def save_generators(self) -> None:
        if self.d.main:
            save_generator(self.run_dir / self.GENERATOR_FILES[0], self.gen, self.meta())
