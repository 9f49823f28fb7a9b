"""The training loop: one process, or one per GPU/CPU slot under torchrun (DDP)."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import re
import signal
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from cyclegan_edge import __version__
from cyclegan_edge.atomic import leftover_temporaries, write_json
from cyclegan_edge.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, UsageError, first_line
from cyclegan_edge.imaging.frames import tensor_to_frames
from cyclegan_edge.imaging.grid import labeled_grid
from cyclegan_edge.imaging.io import write_image
from cyclegan_edge.models import (
    AnyGeneratorConfig,
    CheckpointError,
    GeneratorConfig,
    ResnetGenerator,
    build_generator,
    count_macs,
    init_from_wider,
    init_normal,
    load_generator,
    named_config,
    save_generator,
)
from cyclegan_edge.models.checkpoint import TRAIN_STATE_FORMAT, read_checkpoint, save_file, state_entry
from cyclegan_edge.train.config import TrainConfig
from cyclegan_edge.train.cyclegan import (
    CycleGenerators,
    Discriminators,
    discriminator_losses,
    generator_losses,
    linear_decay,
)
from cyclegan_edge.train.data import (
    PairedDataset,
    ResumableSampler,
    UnpairedDataset,
    loaded_batches,
    domain_dirs,
    same_sizes_to_batch,
    scan_sizes,
)
from cyclegan_edge.train.dist import launched_as_main, setup_dist
from cyclegan_edge.train.loss_plot import plot_losses
from cyclegan_edge.train.pool import ImagePool
from cyclegan_edge.train.run_dir import CHECKPOINT, last_logged_iteration, prepare_run_dir, truncate_log
from cyclegan_edge.train.run_log import Position, RunLog
from cyclegan_edge.train.stopping import Aborted, StopFlag, start_worker

log = logging.getLogger("cyclegan_edge.train")
# what gloo and NCCL say when a peer process is gone
PEER_LOST = re.compile(r"Connection (reset|closed) by peer|remote process exited|Broken pipe|"
                       r"NCCL communicator was aborted")


class TrainingDiverged(RuntimeError):
    pass


def init_from_file(path: str, g_a2b: ResnetGenerator, g_b2a: ResnetGenerator) -> str:
    """--init-from: each generator starts from the file's generator of its direction (a CycleGAN training state
    holds both; any other generator file serves both). CheckpointError (exit 1, a bad model file, as --teacher's)
    when the file is no ResNet generator; UsageError when the command asks for generators it does not fit."""
    try:
        a2b = load_generator(path, "A->B")
        try:
            b2a = load_generator(path, "B->A")
        except CheckpointError:  # one generator (or a pix2pix state): it starts both directions
            b2a = a2b
    except CheckpointError as e:
        raise CheckpointError(f"--init-from {e}") from None
    for target, loaded in ((g_a2b, a2b), (g_b2a, b2a)):
        src = loaded.model
        if not isinstance(src, ResnetGenerator):
            raise CheckpointError(f"--init-from {path}: {loaded.config.name} is not a ResNet generator")
        if not init_from_wider(target, src):
            c = src.cfg
            arch = (f"--netG mobile --mobile-config {'_'.join(map(str, c.channels))}" if c.separable
                    else f"--netG resnet_{c.n_blocks}blocks --ngf {c.channels[0]}")  # fmt: skip
            raise UsageError(f"--init-from {path}: give {arch} (or narrower channels) for its "
                             f"{loaded.config.name}; {target.cfg.name} does not fit")  # fmt: skip
    return a2b.model.cfg.upsample if isinstance(a2b.model, ResnetGenerator) else ""


def check_init_from(cfg: TrainConfig) -> None:
    """A new run's --init-from, as an absolute path (config.json keeps it for the record), checked against the
    generators it is to start."""
    if not cfg.init_from or cfg.resume:
        return
    cfg.init_from = str(Path(cfg.init_from).resolve())
    g_cfg = named_config(cfg.netG, cfg.ngf, cfg.mobile_config, cfg.upsample)
    theirs = init_from_file(cfg.init_from, ResnetGenerator(g_cfg), ResnetGenerator(g_cfg))
    if theirs == "convtranspose" and cfg.upsample != "convtranspose" and launched_as_main():
        log.warning("--init-from %s upsamples with transposed convolutions; --upsample %s rewrites them as "
                    "resize-convolutions: the generators start from outputs that only look like its (fine-tuning "
                    "recovers them); --upsample convtranspose starts from its exact outputs",
                    Path(cfg.init_from).name, cfg.upsample)  # fmt: skip


class Trainer:
    """The training machinery (data, DDP, AMP, exact resume, atomic checkpoints, logs, samples, stop handling)
    with CycleGAN's objective. A subclass brings another objective by overriding the hooks marked below
    (see ``train/distill.py``)."""

    GRID_ROWS: tuple[tuple[str, ...], ...] = (("real_A", "fake_B", "rec_A"), ("real_B", "fake_A", "rec_B"))
    STATE_FORMAT = TRAIN_STATE_FORMAT
    PAIRED = False  # pix2pix: A and B are the two halves of one set of pairs
    GENERATOR_FILES: tuple[str, ...] = ("G_A2B.pth", "G_B2A.pth")

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.d, self.device = setup_dist(cfg)
        self.run_dir = cfg.run_dir
        self.ckpt_path = self.run_dir / CHECKPOINT
        torch.manual_seed(cfg.seed)

        self.g_cfg: AnyGeneratorConfig = self.generator_config()
        self.dataset = self.make_dataset(self.d.main)
        self.sampler = ResumableSampler(self.dataset, self.d.world, self.d.rank, cfg.seed, cfg.batch_size)
        if self.sampler.batches_per_epoch() == 0:
            raise UsageError(f"--batch-size {cfg.batch_size} x {self.d.world} processes exceeds the "
                             f"{len(self.dataset)} training images")  # fmt: skip
        if cfg.overwrite:  # before build(), which must not see the old run's checkpoint (nor must another rank's)
            moved = prepare_run_dir(cfg) if self.d.main else None
            if moved:
                log.warning("%s", moved)
            if self.d.enabled:
                dist.barrier()

        cuda = self.device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda and cfg.amp else None
        self.memory_format = torch.channels_last if cuda and cfg.channels_last else torch.contiguous_format
        self.ddp_ids = [self.d.local_rank] if cuda else None

        self.pools: dict[str, ImagePool] = {}  # the image pools (CycleGAN's build makes them): each process's own
        generators, discriminators = self.build()
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(generators.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(discriminators.parameters(), lr=cfg.lr, betas=betas)
        self.synced = list(generators.parameters()) + list(discriminators.parameters())
        rule = linear_decay(cfg.n_epochs, cfg.n_epochs_decay)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, rule)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, rule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.pos = Position()
        self.saved_at = 0  # the iteration of the last checkpoint written or resumed from
        self.loaded_checkpoint = False  # --resume found a checkpoint and continues from it
        self.trained = False  # fit() trained (False: a resumed run already at its end)
        self.loss_plot_failed = False  # warned once; not tried again
        self.stop = StopFlag(self.d.main)

    def to_device(self, module: torch.nn.Module, compile: bool = False) -> tuple[Any, Any]:
        """``module`` on the device, and the wrapper to call it through (DDP, compiled) in training steps."""
        module = module.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        wrapped: Any = DDP(module, device_ids=self.ddp_ids) if self.d.enabled else module
        return module, torch.compile(wrapped) if compile else wrapped

    # ---- the objective: CycleGAN (hooks a subclass overrides) -----------------------------------
    def generator_config(self) -> AnyGeneratorConfig:
        cfg = self.cfg
        return named_config(cfg.netG, cfg.ngf, cfg.mobile_config, cfg.upsample)

    def make_dataset(self, show_progress: bool) -> UnpairedDataset | PairedDataset:
        a_dir, b_dir = domain_dirs(self.cfg)
        n = self.cfg.max_images
        a, b = scan_sizes(a_dir, n, show_progress), scan_sizes(b_dir, n, show_progress)
        same_sizes_to_batch(a + b, self.cfg)
        return UnpairedDataset([p for p, _ in a], [p for p, _ in b], self.cfg)

    def build(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """Create the models; return (what the G optimizer trains, what the D optimizer trains)."""
        cfg = self.cfg
        assert isinstance(self.g_cfg, GeneratorConfig)
        gens = CycleGenerators(ResnetGenerator(self.g_cfg), ResnetGenerator(self.g_cfg), cfg.lambda_identity > 0)
        discs = Discriminators(self.g_cfg.input_nc, cfg.ndf, cfg.n_layers_D)
        init_normal(gens)
        init_normal(discs)
        if cfg.init_from and not self.ckpt_path.is_file():  # a resumed run's weights come from its checkpoint
            init_from_file(cfg.init_from, gens.G_A, gens.G_B)
            if self.d.main:
                log.info("generators start from %s", cfg.init_from)
        self.gens, self.gens_ddp = self.to_device(gens, cfg.compile)
        self.discs, self.discs_ddp = self.to_device(discs)
        seed = cfg.seed * 1000 + 2 * self.d.rank
        self.pools = {"A": ImagePool(cfg.pool_size, seed=seed), "B": ImagePool(cfg.pool_size, seed=seed + 1)}
        return self.gens, self.discs

    def model_state(self) -> dict[str, Any]:
        return {"generators": {"G_A": state_entry(self.gens.G_A), "G_B": state_entry(self.gens.G_B)},
                "discriminators": self.discs.state_dict()}  # fmt: skip

    def load_model_state(self, s: dict[str, Any]) -> None:
        self.gens.G_A.load_state_dict(s["generators"]["G_A"]["state_dict"])
        self.gens.G_B.load_state_dict(s["generators"]["G_B"]["state_dict"])
        self.discs.load_state_dict(s["discriminators"])

    def rank_state(self) -> dict[str, Any]:
        """What each process of a torchrun run holds for itself (the image pools), saved for each ({}: nothing)."""
        return {"pools": {d: pool.state_dict() for d, pool in self.pools.items()}} if self.pools else {}

    def load_rank_state(self, s: dict[str, Any]) -> None:
        if not self.pools:  # pix2pix, distillation: nothing of their own
            return
        ranks = s.get("ranks")
        if ranks is None:  # saved before each rank's pools were: rank 0's alone, at the top
            pools = s["pools"]
        elif self.d.rank < len(ranks):
            pools = ranks[self.d.rank]["pools"]
        else:  # a process more than the run had before: its pools start empty
            return
        for d, pool in self.pools.items():
            pool.load_state_dict(pools[d])

    def save_generators(self) -> None:
        if not self.d.main:
            return
        a2b_file, b2a_file = self.GENERATOR_FILES
        save_generator(self.run_dir / a2b_file, self.gens.G_A, {**self.meta(), "direction": "A->B"})
        save_generator(self.run_dir / b2a_file, self.gens.G_B, {**self.meta(), "direction": "B->A"})

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        """The training state ``save`` writes; ``ranks``: every process's ``rank_state``, by rank."""
        return {
            "format": self.STATE_FORMAT,
            "config": self.cfg.to_dict(),
            **self.model_state(),
            "ranks": ranks,
            "optimizers": {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict()},
            "schedulers": {"G": self.sched_g.state_dict(), "D": self.sched_d.state_dict()},
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),  # and the GPU's: Dropout on a GPU draws from its generator
                    **({"cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {})},
            "position": {"epoch": self.pos.epoch, "batch": self.pos.batch, "iteration": self.pos.iteration},
            "data": self.data_shape(),
            "meta": self.meta(),
        }

    def data_shape(self) -> dict[str, int]:
        """What an epoch is made of: a position within one means nothing once these change."""
        return {"processes": self.d.world, "batch_size": self.cfg.batch_size, "a": len(self.dataset.a_files),
                "b": len(self.dataset.b_files)}  # fmt: skip

    def meta(self) -> dict[str, Any]:
        data = self.cfg.dataroot or f"{self.cfg.a_dir} | {self.cfg.b_dir}"
        init = {"init_from": self.cfg.init_from} if self.cfg.init_from else {}
        return {"train_size": self.cfg.crop_size, "dataset": data, "iterations": self.pos.iteration, **init,
                "toolkit_version": __version__}  # fmt: skip

    def save(self) -> None:
        """Atomic: the previous checkpoint stays valid until the new one is complete."""
        self.saved_at = self.pos.iteration  # every rank: each names the checkpoint kept when a peer is lost
        ranks = self.gather_rank_states()
        if not self.d.main:
            return
        save_file(self.state(ranks), self.ckpt_path)

    def gather_rank_states(self) -> list[dict[str, Any]]:
        """Every process's ``rank_state``, on rank 0 (a collective: every rank calls it; [] on the others)."""
        mine = self.rank_state()
        if not mine:
            return []
        if not self.d.enabled:
            return [mine]
        gathered: list[Any] | None = [None] * self.d.world if self.d.main else None
        dist.gather_object(mine, gathered, dst=0)
        return gathered or []

    def first_checkpoint(self) -> int:
        """The iteration of a run's first checkpoint: --save-every (as the run had it, or as given now) or the
        first epoch's end, whichever came first."""
        try:
            saved = int(json.loads((self.run_dir / "config.json").read_text()).get("save_every", self.cfg.save_every))
        except (OSError, ValueError, TypeError, AttributeError):
            saved = self.cfg.save_every
        return min(saved, self.cfg.save_every, self.sampler.batches_per_epoch())

    def resume(self) -> None:
        for saved in (self.ckpt_path, *(self.run_dir / f for f in self.GENERATOR_FILES)) if self.d.main else ():
            for stale in leftover_temporaries(saved):  # a save that kill -9 cut short; rank 0 holds the run's lock and
                stale.unlink(missing_ok=True)  # writes its files (another rank's unlink could hit one it is writing)
        if not self.ckpt_path.is_file():
            kept = [f for f in self.GENERATOR_FILES if (self.run_dir / f).is_file()]
            logged = last_logged_iteration(self.run_dir / "log.csv")
            if kept or logged >= self.first_checkpoint():  # it had one (deleted since): never start it over
                held = ", ".join(kept + ([f"{logged} logged iterations"] if logged else []))
                raise CheckpointError(f"--resume: {self.ckpt_path} is missing, so {self.run_dir} ({held}) cannot "
                                      "be continued: --overwrite starts it over, moving this run aside first")  # fmt: skip
            if self.d.main:  # stopped before its first save: nothing to continue, nothing to protect
                truncate_log(self.run_dir / "log.csv", 0)
                log.warning("--resume: %s stopped before its first checkpoint: starting it again from iteration 0 "
                            "with its saved settings", self.run_dir)  # fmt: skip
            return
        try:
            s = read_checkpoint(self.ckpt_path)
        except CheckpointError as e:
            raise CheckpointError(f"--resume: {e}; --overwrite starts the run over") from None
        fmt = s.get("format") if isinstance(s, dict) else type(s).__name__
        if fmt != self.STATE_FORMAT:  # a state dict saved by hand, or another kind of run's state copied in
            raise CheckpointError(f"--resume: {self.ckpt_path} is not this run's training state (it holds "
                                  f"{fmt or 'no format key: a plain state dict?'}, not {self.STATE_FORMAT}); "
                                  "--overwrite starts the run over")  # fmt: skip
        self.check_same_inputs(s)
        try:
            self.load_model_state(s)
            self.load_rank_state(s)
            self.opt_g.load_state_dict(s["optimizers"]["G"])
            self.opt_d.load_state_dict(s["optimizers"]["D"])
            self.sched_g.load_state_dict(s["schedulers"]["G"])
            self.sched_d.load_state_dict(s["schedulers"]["D"])
            if s["scaler"]:  # {} from a disabled scaler (CPU, bf16, --no-amp): --amp/--device may change on resume
                self.scaler.load_state_dict(s["scaler"])
            torch.set_rng_state(s["rng"]["torch"])
            if self.device.type == "cuda" and "cuda" in s["rng"]:
                torch.cuda.set_rng_state(s["rng"]["cuda"], self.device)
            self.pos = Position(**s["position"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:  # another run's state: other shapes or parts
            why = f"no {e}" if isinstance(e, KeyError) else first_line(e, 160)
            raise CheckpointError(f"--resume: {self.ckpt_path} does not fit this run's models ({why}); "
                                  "--overwrite starts the run over") from None  # fmt: skip
        self.saved_at = self.pos.iteration
        self.loaded_checkpoint = True
        self.check_data_shape(s.get("data"))
        if self.d.main:
            dropped = truncate_log(self.run_dir / "log.csv", self.pos.iteration)
            if dropped:
                log.info("log.csv: dropped %d row%s logged after the checkpoint", dropped, "" if dropped == 1 else "s")
            log.info("resumed from %s at epoch %d, batch %d (iteration %d)", self.ckpt_path, self.pos.epoch,
                     self.pos.batch, self.pos.iteration)  # fmt: skip

    def check_data_shape(self, saved: dict[str, int] | None) -> None:
        """Resumed with other processes or other training files (checkpoints that say which): say what changes, and
        start a stopped epoch again from its beginning, since where it stopped is a place in another sequence."""
        now = self.data_shape()
        if not saved or saved == now:
            return
        what = {"processes": "processes", "batch_size": "batch size", "a": "pairs" if self.PAIRED else "A images",
                **({} if self.PAIRED else {"b": "B images"})}  # fmt: skip
        changes = ", ".join(f"{what[k]} {saved[k]} -> {now[k]}" for k in what if k in saved and saved[k] != now[k])
        if not changes:
            return
        again = ""
        if self.pos.batch:
            again = (f"; epoch {self.pos.epoch} starts again from its beginning ({self.pos.batch} of its batches "
                     "were done)")
            self.pos.batch = 0
        if self.d.main:
            log.warning("--resume: %s since the checkpoint; an epoch is now %d iterations%s", changes,
                        self.sampler.batches_per_epoch(), again)  # fmt: skip

    def check_same_inputs(self, state: dict[str, Any]) -> None:
        """Hook: CheckpointError when a file the run learns from is not the one its checkpoint learned from."""

    # ---- one iteration -------------------------------------------------------------------------
    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        real_a = batch["A"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        real_b = batch["B"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

        # G step, discriminators frozen (called without their DDP wrapper: no gradients to sync)
        self.discs.requires_grad_(False)
        with self.autocast():
            out = self.gens_ddp(real_a, real_b)
            g_losses = generator_losses(real_a, real_b, out, self.discs, cfg.gan_mode, cfg.lambda_cycle,
                                        cfg.lambda_identity)  # fmt: skip
            loss_g = sum(g_losses.values())
        assert isinstance(loss_g, torch.Tensor)
        self.apply(self.opt_g, loss_g)

        # D step on real images and pooled fakes
        self.discs.requires_grad_(True)
        fake_a = self.pools["A"].query(out["fake_A"].detach())
        fake_b = self.pools["B"].query(out["fake_B"].detach())
        with self.autocast():
            d_losses = discriminator_losses(self.discs_ddp(real_a, fake_a, real_b, fake_b), cfg.gan_mode)
            loss_d = d_losses["D_A"] + d_losses["D_B"]
        self.apply(self.opt_d, loss_d)
        self.scaler.update()

        self.last_images = {"real_A": real_a, "real_B": real_b, **{k: v.detach() for k, v in out.items()}}
        return {k: float(v.detach()) for k, v in {**g_losses, **d_losses}.items()}

    def apply(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss`` (checked finite on every rank first; scaled for fp16 AMP). The
        caller calls ``self.scaler.update()`` once after the step's last ``apply``."""
        self.check_finite(loss)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def check_finite(self, loss: torch.Tensor) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).item() else 1.0], device=self.device)
        if self.d.enabled:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            raise TrainingDiverged(f"loss is not finite at iteration {self.pos.iteration + 1}")

    def mean_over_ranks(self, losses: dict[str, float]) -> dict[str, float]:
        """The iteration's losses over every rank's images (each rank's are its own shard's): what log.csv, the bar
        and losses.png show, as one process with the whole batch would."""
        if not self.d.enabled:
            return losses
        values = torch.tensor(list(losses.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(losses, (values / self.d.world).tolist()))

    def stop_agreed(self) -> bool:
        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=self.device)
        if self.d.enabled:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    # ---- outputs -------------------------------------------------------------------------------
    def write_grid(self, name: str) -> Path | None:
        if not self.d.main or not hasattr(self, "last_images"):
            return None
        tiles = [[tensor_to_frames(self.last_images[k][:1].float().cpu().numpy())[0] for k in row]
                 for row in self.GRID_ROWS]  # fmt: skip
        return write_image(self.run_dir / "samples" / f"{name}.png", labeled_grid(tiles, self.grid_labels()))

    def grid_labels(self) -> list[list[str]]:
        """The sample grid's column labels: "fake B" is G_A2B(real A)."""
        return [[k.replace("_", " ") for k in row] for row in self.GRID_ROWS]

    def write_loss_plot(self) -> None:
        """losses.png from log.csv; a plot that cannot be drawn never stops the training (one warning)."""
        if not self.d.main or self.loss_plot_failed:
            return
        try:
            plot_losses(self.run_dir / "log.csv", self.run_dir / "losses.png")
        except Exception as e:
            self.loss_plot_failed = True
            log.warning("losses.png not drawn: %s", first_line(e))

    def stale_generator_files(self) -> list[str]:
        """The run's generator files that are missing or hold another iteration than its checkpoint (a kill between
        the checkpoint's save and theirs, or between the two of a CycleGAN run)."""
        def iteration(name: str) -> object:
            try:
                return read_checkpoint(self.run_dir / name)["meta"]["iterations"]
            except (CheckpointError, KeyError, TypeError):
                return None

        return [f for f in self.GENERATOR_FILES if iteration(f) != self.pos.iteration]

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self) -> int:
        """Train to the end (0), or until Ctrl-C (130)/SIGTERM (143) or a non-finite loss (1); saves first, except
        after a non-finite loss (the last good checkpoint stays)."""
        cfg = self.cfg
        if cfg.resume:
            self.resume()
        total_epochs = cfg.n_epochs + cfg.n_epochs_decay
        # from the position: a run resumed with other processes or files had epochs of another length before
        left = max(0, (total_epochs - self.pos.epoch) * self.sampler.batches_per_epoch() - self.pos.batch)
        total_iters = min(self.pos.iteration + left, cfg.max_iters or 1 << 62)
        self.trained = not (cfg.resume and (self.pos.epoch >= total_epochs or self.pos.iteration >= total_iters))
        if not self.trained:
            if self.d.main:  # its files stay as the run left them; generators a kill kept it from writing are written
                stale = self.stale_generator_files()
                if stale:
                    log.warning("--resume: %s missing or older than the checkpoint (iteration %d), as a kill leaves "
                                "them: written again from it", ", ".join(stale), self.pos.iteration)  # fmt: skip
                    self.save_generators()
                end = (f"has done all its {total_epochs} epochs" if self.pos.epoch >= total_epochs else
                       f"is already at iteration {self.pos.iteration} and this command ends at {total_iters}")  # fmt: skip
                on = ("" if "init_from" in cfg.HIDDEN else
                      f": to train on, start a new run with --init-from {self.ckpt_path}")  # fmt: skip
                why = (" (--max-iters sets the end)" if cfg.max_iters and cfg.max_iters <= self.pos.iteration else
                       f" (its schedule, --n-epochs + --n-epochs-decay, is done{on})")  # fmt: skip
                log.info("--resume: %s %s: nothing to train%s", self.run_dir, end, why)
            return self.finish(0, {})
        if self.d.main:
            self.write_config()
        old_handlers = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        diverged: TrainingDiverged | None = None
        aborted, lost = False, ""
        try:  # around the log too: a second signal may land while it opens or closes
            with RunLog(self.run_dir, self.d.main, total_iters, self.pos.iteration) as run_log:
                try:
                    while self.pos.epoch < total_epochs and self.pos.iteration < total_iters:
                        self.train_epoch(run_log, total_iters)
                    self.check_ranks_in_sync()
                except Aborted:
                    raise
                except KeyboardInterrupt:
                    status = EXIT_TERMINATED if self.stop.signum == signal.SIGTERM else EXIT_INTERRUPTED
                except TrainingDiverged as e:
                    diverged = e
                except RuntimeError as e:  # under torchrun: another rank ended (killed, out of memory)
                    peer = PEER_LOST.search(str(e)) if self.d.enabled else None
                    if peer is None:
                        raise
                    lost = f"{dist.get_backend()}: {peer.group(0)}"
                if lost:  # the step under way may be half applied on this rank: nothing is saved
                    raise Aborted
                if diverged is None:
                    self.save()
                    self.save_generators()
                    if status == 0:
                        self.write_grid("final")
                    self.write_loss_plot()
        except Aborted:  # the checkpoint written last stays: each file is replaced whole or not at all
            aborted = True
            status = EXIT_TERMINATED if self.stop.signum == signal.SIGTERM else EXIT_INTERRUPTED
        if aborted:
            kept = (f"{self.ckpt_path} (iteration {self.saved_at}) is kept: --resume continues from there"
                    if self.ckpt_path.is_file() else "no checkpoint had been saved yet")  # fmt: skip
            if lost:
                log.error("rank %d: another process of this run ended at iteration %d (%s); saving nothing: %s",
                          self.d.rank, self.pos.iteration, lost, kept)  # fmt: skip
                return self.finish(EXIT_FAILED, old_handlers)
            if self.d.main:
                log.warning("aborted at iteration %d by a second stop signal, saving nothing; %s", self.pos.iteration,
                            kept)  # fmt: skip
            return self.finish(status, old_handlers)
        if diverged is not None:  # after the progress bar has closed: the line stands on its own
            if self.d.main:
                kept = (f"the last checkpoint, {self.ckpt_path} (iteration {self.saved_at}), is kept, though its weights "
                        "may already be diverging" if self.ckpt_path.is_file() else "no checkpoint had been saved yet")  # fmt: skip
                log.error("%s: stopped; %s. --overwrite with a lower --lr (or --no-amp) starts over", diverged, kept)
            return self.finish(EXIT_FAILED, old_handlers)
        if self.d.main and status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            log.warning("interrupted at iteration %d: saved %s; continue with --resume", self.pos.iteration,
                        self.ckpt_path)  # fmt: skip
        elif self.d.main:
            log.info("done: %d iteration%s; generators in %s (%s)", self.pos.iteration,
                     "" if self.pos.iteration == 1 else "s", self.run_dir, ", ".join(self.GENERATOR_FILES))  # fmt: skip
        return self.finish(status, old_handlers)

    def train_epoch(self, run_log: RunLog, total_iters: int) -> None:
        """The rest of the current epoch (or up to ``total_iters``); raises KeyboardInterrupt on an agreed stop."""
        cfg = self.cfg
        self.sampler.set_position(self.pos.epoch, self.pos.batch)
        # its own generator: a DataLoader draws a base seed when an epoch starts, which would shift the global RNG
        # (Dropout's) of a run resumed mid-epoch; samples are seeded per index anyway (data.py)
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True,
                            num_workers=cfg.workers, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator(),
                            worker_init_fn=functools.partial(start_worker, trainer_pid=os.getpid()))  # fmt: skip
        tick = time.perf_counter()
        with loaded_batches(loader) as batches:
            for batch in batches:
                losses = self.mean_over_ranks(self.step(batch))
                self.pos.batch += 1
                self.pos.iteration += 1
                prev, tick = tick, time.perf_counter()
                ips = cfg.batch_size * self.d.world / max(tick - prev, 1e-9)
                show = self.pos.iteration % cfg.log_every == 0 or self.pos.iteration == 1
                run_log.row(self.pos, float(self.sched_g.get_last_lr()[0]), ips, losses, show)
                if self.pos.iteration % cfg.sample_every == 0:
                    self.write_grid(f"iter_{self.pos.iteration:07d}")
                    self.write_loss_plot()
                if self.pos.iteration % cfg.save_every == 0:
                    self.save()
                if self.stop_agreed():
                    raise KeyboardInterrupt
                if self.pos.iteration >= total_iters and self.pos.batch < self.sampler.batches_per_epoch():
                    return  # an epoch's last batch closes it first: a resumed (finished) run starts at the next one
        self.pos.epoch += 1
        self.pos.batch = 0
        with warnings.catch_warnings():  # a run resumed at an epoch's end steps them before any optimizer step
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
            self.sched_g.step()
            self.sched_d.step()
        self.save()

    def write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "config.json", {**self.cfg.to_dict(), "generator": self.g_cfg.to_dict(),
                                                 "world_size": self.d.world, "device": str(self.device)})  # fmt: skip
        with torch.random.fork_rng(devices=[]):  # a resumed run's RNG stays the checkpoint's (Dropout draws from it)
            macs = count_macs(build_generator(self.g_cfg), self.cfg.crop_size, self.cfg.crop_size)
        a, b = len(self.dataset.a_files), len(self.dataset.b_files)
        images = f"{a} training pairs" if self.PAIRED else f"{a}+{b} training images"
        log.info("G: %s (%s); %s; device %s%s; %d process(es)", self.g_cfg.name, macs, images, self.device,
                 f", amp {self.amp_dtype}" if self.amp_dtype else "", self.d.world)  # fmt: skip

    def finish(self, status: int, old_handlers: dict[Any, Any]) -> int:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if self.d.enabled and dist.is_initialized():
            # The DDP wrappers' reducers hold the process group: drop them first, so that the group is torn down
            # here and not by the garbage collector at interpreter exit (where gloo once aborted a finished rank).
            # After a normal end every rank is here; a barrier keeps one from tearing down under the other.
            for name in [n for n in vars(self) if n.endswith("_ddp")]:
                delattr(self, name)
            gc.collect()
            if status == 0:
                dist.barrier()
            dist.destroy_process_group()
        return status

    def check_ranks_in_sync(self) -> None:
        """DDP keeps replicas identical; verify it once at the end (a cheap sum per rank)."""
        if not self.d.enabled:
            return
        local = torch.stack([torch.stack([p.detach().double().sum() for p in self.synced]).sum()]).to(self.device)
        sums = [torch.zeros_like(local) for _ in range(self.d.world)]
        dist.all_gather(sums, local)
        values = [float(s.item()) for s in sums]
        if self.d.main:
            log.info("parameter checksums per rank: %s", " ".join(f"{v:.12e}" for v in values))
        if len(set(values)) != 1:
            raise RuntimeError(f"DDP replicas diverged: parameter checksums per rank {values}")
