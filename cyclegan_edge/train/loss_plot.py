"""losses.png beside a run's log.csv: every loss term over the iterations, as the mean of each stretch of
iterations (about 400 stretches for the whole run) inside a band from its 10th to its 90th percentile, so the
trend shows through the per-image noise. Generator terms on the left, discriminator terms on the right."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cyclegan_edge.atomic import atomic_path

NOT_LOSSES = ("iteration", "epoch", "lr", "images_per_s")
STRETCHES = 400
MIN_STRETCH = 5  # logged iterations per stretch at the least: a short run's curve is smoothed too
WARM_UP = 0.05  # the first share of the stretches, whose losses may sit far above the rest


def read_losses(log_csv: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(iterations, {loss name: values}) from log.csv; rows that do not parse are left out."""
    with open(log_csv, newline="") as f:
        reader = csv.DictReader(f)
        names = [n for n in reader.fieldnames or [] if n not in NOT_LOSSES]
        rows = []
        for r in reader:
            try:
                rows.append([float(r["iteration"])] + [float(r[n]) for n in names])
            except (TypeError, ValueError, KeyError):
                continue
    table = np.array(rows, dtype=np.float64).reshape(-1, len(names) + 1)
    return table[:, 0], {n: table[:, i + 1] for i, n in enumerate(names)}


def stretch_count(n: int) -> int:
    """How many stretches ``n`` logged iterations are drawn as: at most STRETCHES, of MIN_STRETCH or more each
    (a log too short for two such stretches is drawn point by point)."""
    return n if n < 2 * MIN_STRETCH else min(STRETCHES, n // MIN_STRETCH)


def stretches(iterations: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x, mean, 10th percentile, 90th percentile) per stretch of consecutive iterations."""
    parts = np.array_split(np.arange(len(values)), stretch_count(len(values)))
    x = np.array([iterations[p].mean() for p in parts])
    mean = np.array([values[p].mean() for p in parts])
    low, high = (np.array([np.percentile(values[p], q) for p in parts]) for q in (10, 90))
    return x, mean, low, high


def y_top(bands: list[np.ndarray]) -> float | None:
    """A y-axis top that leaves out the first iterations' spike (start-up losses can be 5-10x the rest and
    would squeeze every later curve against the axis), or None where nothing needs leaving out."""
    later = [b[int(len(b) * WARM_UP) + 1 :] for b in bands if len(b) > 1]
    later = [b for b in later if len(b)]
    if not later:
        return None
    top = 1.25 * max(float(b.max()) for b in later)
    return top if max(float(b.max()) for b in bands) > top else None


def plot_losses(log_csv: Path, out: Path) -> Path | None:
    """Draw ``out`` from ``log_csv`` (atomically); None when nothing is logged yet."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("matplotlib is not installed (pip install matplotlib; [train] brings it)") from None
    iterations, losses = read_losses(log_csv)
    if not len(iterations) or not losses:
        return None
    panels = {"generator terms (weighted as in the loss)": [n for n in losses if not n.startswith("D")],
              "discriminator terms": [n for n in losses if n.startswith("D")]}  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (title, names) in zip(axes, panels.items()):
        highs = []
        for name in names:
            x, mean, low, high = stretches(iterations, losses[name])
            (line,) = ax.plot(x, mean, label=name, linewidth=1.4)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
            highs.append(high)
        top = y_top(highs)
        ax.set_title(title + ("\n(the first iterations reach above the top)" if top else ""))
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_ylim(bottom=0, top=top)
        ax.grid(alpha=0.3)
        if names:  # below the axes: inside, it covered curves and bands
            ax.legend(fontsize=8, ncol=min(len(names), 6), loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      frameon=False)  # fmt: skip
    fig.suptitle(f"{log_csv.parent.name}: losses over {int(iterations[-1])} iterations (line: mean of each "
                 f"stretch of {len(iterations) // stretch_count(len(iterations))} logged; band: its 10th-90th "
                 "percentile)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
