"""Domain classifier: a small CNN trained from scratch on trainA vs trainB, cached per dataset.

No pretrained features can be downloaded here, so the judge of "does this look like domain B" is a
classifier trained at evaluation time on the dataset's own training images (the test images stay held
out and set the scale, see ``metrics.domain_score``).

A classifier trained plainly on summer vs winter learns colour first: it calls a desaturated or greyscale
summer photo "winter" (../shared/NOTES.md, "Judging a season model"). So while training, each image of
*both* classes gets random global colour statistics: colour cast, saturation (greyscale included), mean
brightness and a haze are set to random absolute levels (``colour_jitter``), which leaves the class in the
picture's structure and local colour (snow on ridges, bare trees, foliage), and a colour filter no longer
passes for the other domain. Geometry: random crops of 75-100% of the image and horizontal flips.
Prediction averages the image and its mirror image. Measured on summer2winter (benchmarks/evaluate/):
held-out balanced accuracy 0.74; colour filters on summer photos score 0.03-0.42 on the normalised scale
(multiplicative jitter, saturation x U(0, 1.6) etc., gave 0.21-0.74 at the same accuracy with a
similar net).

The trained weights are cached under ``cache_dir`` keyed by the training file list (names and sizes) and
the recipe, so a second evaluation on the same dataset starts at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan_edge.errors import first_line
from cyclegan_edge.models.checkpoint import CheckpointError, read_checkpoint, save_file
from cyclegan_edge.evaluate.config import ClassifierRecipe
from cyclegan_edge.evaluate.data import square, usable_images
from cyclegan_edge.imaging.files import spread

log = logging.getLogger(__name__)

FORMAT = "cyclegan-edge/domain-classifier"
LUMA = (0.299, 0.587, 0.114)  # RGB


def make_classifier(width: int) -> nn.Sequential:
    """Four stages (a stride-2 3x3 conv, then a 3x3 conv; BatchNorm, ReLU), widths x1, x2, x4, x8, global
    average pooling, 2 logits (A, B)."""
    c = [3, width, 2 * width, 4 * width, 8 * width]
    layers: list[nn.Module] = []
    for i in range(4):
        for cin, stride in ((c[i], 2), (c[i + 1], 1)):
            layers += [nn.Conv2d(cin, c[i + 1], 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c[i + 1]),
                       nn.ReLU(True)]  # fmt: skip
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c[4], 2)]
    return nn.Sequential(*layers)


def to_stored(frames: Sequence[np.ndarray], side: int) -> torch.Tensor:
    """BGR uint8 frames -> uint8 NCHW RGB tensor, each centre-cropped to a square and resized to ``side``."""
    rgb = np.stack([square(f, side)[:, :, ::-1] for f in frames])
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()


def crop_flip(x: torch.Tensor, out_side: int, min_crop: float, g: torch.Generator | None) -> torch.Tensor:
    """Random square crops (side U(min_crop, 1) of the image) with random horizontal flips, resampled to
    ``out_side``; ``g=None`` gives the whole image, unflipped (the same resampling path as training)."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    if g is None:
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    else:
        scale = min_crop + (1 - min_crop) * torch.rand(n, generator=g)
        flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
        theta[:, :, 2] = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=g) - 1)
    grid = F.affine_grid(theta, [n, 3, out_side, out_side], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def colour_jitter(x: torch.Tensor, r: ClassifierRecipe, g: torch.Generator) -> torch.Tensor:
    """Replace each image's global colour statistics by random ones (x in [0, 1], NCHW RGB): its colour
    cast (mean chroma), saturation (mean absolute chroma, 0 = greyscale with probability greyscale_p) and
    mean luma are set to random *absolute* levels, then a haze is blended in. Scaling them (saturation x U(0,
    1.6), ...) would keep their order, so winter would still be the less saturated class; set to random
    levels they say nothing about the class, and only the picture's structure and local colour do."""
    n = x.shape[0]

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(n, *shape, 1, 1, generator=g)

    luma = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    chroma = x - luma
    chroma = chroma - chroma.mean((2, 3), keepdim=True)  # no colour cast
    saturation = chroma.abs().mean((1, 2, 3), keepdim=True).clamp_min(1e-4)
    target = u(1) * r.saturation_max * (u(1) >= r.greyscale_p)
    chroma = chroma * (target / saturation) + r.tint * (2 * u(3) - 1)
    mean_luma = r.luma_min + (r.luma_max - r.luma_min) * u(1)
    x = luma * (mean_luma / luma.mean((2, 3), keepdim=True).clamp_min(1e-3)) + chroma
    haze = u(1) * r.haze_max * (u(1) < r.haze_p)
    x = (1 - haze) * x + haze * (0.5 + 0.5 * u(3))
    return x.clamp(0.0, 1.0)


class DomainClassifier:
    def __init__(self, net: nn.Module, recipe: ClassifierRecipe, info: dict[str, object]) -> None:
        self.net, self.recipe, self.info = net.eval(), recipe, info

    @torch.inference_mode()
    def prob_b(self, frames: Sequence[np.ndarray], batch: int = 64) -> np.ndarray:
        """P(domain B) for each BGR uint8 frame, averaged over the frame and its mirror image."""
        r, out = self.recipe, []
        for i in range(0, len(frames), batch):
            x = crop_flip(to_stored(frames[i : i + batch], r.stored_side).float() / 255, r.size, r.min_crop, None)
            x = x * 2 - 1
            p = F.softmax(self.net(x), 1)[:, 1] + F.softmax(self.net(x.flip(3)), 1)[:, 1]
            out.append((p / 2).numpy())
        return np.concatenate(out)

    def judged_b(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return self.prob_b(frames) > 0.5


def train_classifier(frames_a: Sequence[np.ndarray], frames_b: Sequence[np.ndarray], r: ClassifierRecipe) -> DomainClassifier:
    """Train from scratch (seeded): class 0 = A, class 1 = B, classes weighted to balance."""
    torch.manual_seed(r.seed)
    g = torch.Generator().manual_seed(r.seed)
    x = torch.cat([to_stored(frames_a, r.stored_side), to_stored(frames_b, r.stored_side)])
    y = torch.cat([torch.zeros(len(frames_a), dtype=torch.long), torch.ones(len(frames_b), dtype=torch.long)])
    weight = torch.tensor([len(y) / (2 * len(frames_a)), len(y) / (2 * len(frames_b))])
    net = make_classifier(r.width)
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=5e-4)
    steps = r.epochs * -(-len(y) // r.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=steps, pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(r.epochs):
        net.train()
        order, seen, correct, loss_sum = torch.randperm(len(y), generator=g), 0, 0, 0.0
        for i in range(0, len(y), r.batch_size):
            idx = order[i : i + r.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            xb = crop_flip(x[idx].float() / 255, r.size, r.min_crop, g)
            xb = colour_jitter(xb, r, g) * 2 - 1
            logits = net(xb)
            loss = F.cross_entropy(logits, y[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen, loss_sum = seen + len(idx), loss_sum + loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        log.info("classifier epoch %d/%d: loss %.3f, train accuracy %.3f (jittered), %.0f s",
                 epoch + 1, r.epochs, loss_sum / max(seen, 1), correct / max(seen, 1), time.perf_counter() - t0)  # fmt: skip
    info: dict[str, object] = {"n_a": len(frames_a), "n_b": len(frames_b), "train_seconds": round(time.perf_counter() - t0, 1)}
    return DomainClassifier(net, r, info)


def dataset_key(files_a: Sequence[Path], files_b: Sequence[Path], r: ClassifierRecipe) -> str:
    """Hash of the training file list (names and sizes, in order) and the recipe."""
    listing = [[[p.name, p.stat().st_size] for p in files] for files in (files_a, files_b)]
    blob = json.dumps({"files": listing, "recipe": dataclasses.asdict(r)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_classifier(path: Path, clf: DomainClassifier) -> None:
    payload = {"format": FORMAT, "recipe": dataclasses.asdict(clf.recipe), "info": clf.info,
               "state_dict": clf.net.state_dict()}  # fmt: skip
    save_file(payload, path)


def load_classifier(path: Path) -> DomainClassifier:
    """A cached classifier; CheckpointError (one line) for a file that is damaged or holds something else."""
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a domain classifier")
    try:
        recipe = ClassifierRecipe(**payload["recipe"])
        net = make_classifier(recipe.width)
        net.load_state_dict(payload["state_dict"])
        return DomainClassifier(net, recipe, dict(payload["info"], cache=str(path)))
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a whole domain classifier ({first_line(e, 160)})") from None


def cached_classifier(files_a: Sequence[Path], files_b: Sequence[Path], r: ClassifierRecipe, cache_dir: Path,
                      folders: tuple[str, str] = ("trainA", "trainB")) -> DomainClassifier:  # fmt: skip
    """The cached classifier for this file list and recipe, trained (and cached) on a miss. A file that does not
    decode is skipped with a warning (``folders`` name where the files are); the counts used and skipped are
    in ``info``."""
    if r.max_images:
        files_a, files_b = spread(files_a, r.max_images), spread(files_b, r.max_images)
    path = cache_dir / f"domain_{dataset_key(files_a, files_b, r)}.pt"
    if path.is_file():
        try:
            clf = load_classifier(path)
            log.info("domain classifier: cached %s", path)
            return clf
        except CheckpointError as e:  # a cache: what it held can be made again
            log.warning("domain classifier: %s; training it again", e)
    what = "the domain {} training images (for the domain classifier)"
    frames_a, frames_b = (usable_images(f, d, what.format(c)) for f, d, c in zip((files_a, files_b), folders, "AB"))
    log.info("domain classifier: training on %d + %d images (cache miss: %s)", len(frames_a), len(frames_b), path)
    clf = train_classifier(frames_a, frames_b, r)
    clf.info.update(skipped_a=len(files_a) - len(frames_a), skipped_b=len(files_b) - len(frames_b))
    try:
        save_classifier(path, clf)
        clf.info["cache"] = str(path)
    except OSError as e:  # the evaluation goes on: only the next one trains it again
        log.warning("domain classifier: not cached, %s cannot be written (%s); the next evaluation trains it again",
                    path, e.strerror or e)  # fmt: skip
    return clf

