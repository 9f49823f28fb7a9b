"""python -m cyclegan_edge.evaluate GENERATOR [--reverse GENERATOR_BACK] --dataroot ROOT [--output DIR]

Judges a generator on real test images, without any network download: the domain score (a classifier
trained on the dataset's own training images, cached) beside trivial colour-filter baselines, cycle L1,
content preservation (edge SSIM), the checkerboard score, MACs and CPU latency. See the package modules.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cyclegan_edge import require_python_310
from cyclegan_edge.errors import UsageError, import_holding_ctrl_c, run_cli

if TYPE_CHECKING:
    from cyclegan_edge.evaluate.config import ClassifierRecipe, EvalConfig


def evaluate(cfg: EvalConfig, recipe: ClassifierRecipe, command: str) -> dict[str, Any]:
    import torch

    from cyclegan_edge.evaluate.checkerboard import checkerboard_score
    from cyclegan_edge.evaluate.data import load_squares
    from cyclegan_edge.evaluate.domain import cached_classifier
    from cyclegan_edge.evaluate.filters import BASELINES
    from cyclegan_edge.evaluate.generators import OTHER, evaluation_options, is_training_state, open_generator
    from cyclegan_edge.evaluate.metrics import cycle_l1, domain_score, domain_score_ci, edge_ssim
    from cyclegan_edge.evaluate.report import make_report
    from cyclegan_edge.imaging.files import folder_image_files
    from cyclegan_edge.machine import cpu_model, loaded_versions
    from cyclegan_edge.runtime.timing import measure

    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    log = logging.getLogger("cyclegan_edge.evaluate")
    src_dir, tgt_dir = (cfg.a, cfg.b) if cfg.direction == "A->B" else (cfg.b, cfg.a)
    # every folder is listed before any slow work, so an empty one fails first; undecodable files are skipped
    test = [(d, f"the domain {n} test images") for d, n in zip((src_dir, tgt_dir), cfg.direction.split("->"))]
    src_files, tgt_files = (folder_image_files(d, cfg.max_images, what) for d, what in test)
    train_a, train_b = (folder_image_files(d, 0, f"the domain {n} training images (for the domain classifier)")
                        for d, n in ((cfg.train_a, "A"), (cfg.train_b, "B")))  # fmt: skip
    src, tgt = (load_squares(f, cfg.size, d, what) for f, (d, what) in zip((src_files, tgt_files), test))
    options = evaluation_options(cfg.backend, cfg.provider, cfg.threads)
    gen = open_generator(cfg.generator, cfg.direction, cfg.size, options)  # before the classifier: fail fast
    reverse = cfg.reverse or (cfg.generator if is_training_state(Path(cfg.generator)) else "")
    rev = open_generator(reverse, OTHER[cfg.direction], cfg.size, options, reverse=True) if reverse else None
    clf = cached_classifier(train_a, train_b, recipe, Path(cfg.cache_dir), (cfg.train_a, cfg.train_b))

    def judged(frames: Sequence[np.ndarray]) -> np.ndarray:
        b = clf.judged_b(frames)
        return b if cfg.direction == "A->B" else ~b

    j_src, j_tgt = judged(src), judged(tgt)

    def scored(frames: Sequence[np.ndarray]) -> dict[str, Any]:
        j = judged(frames)
        ci = domain_score_ci(j, j_src, j_tgt, paired=True, n_boot=cfg.bootstrap, seed=cfg.seed)
        return {"score": domain_score(j, j_src, j_tgt), "ci95": list(ci), "judged_target": float(j.mean()), "n": len(j)}

    log.info("translating %d images with %s (%s)", len(src), gen.path.name, gen.info["backend"])
    out = gen.translate(src, cfg.batch)
    cycled = rev.translate(out, cfg.batch) if rev else None

    baselines = {}
    for name, f in BASELINES.items():
        filtered = [f(x) for x in src]
        baselines[name] = {**scored(filtered), "edge_ssim": edge_ssim(src, filtered),
                           "checkerboard": checkerboard_score(src, filtered)["score"]}  # fmt: skip
    latency = None
    if cfg.latency_iters:
        log.info("timing %d calls at %dx%d", cfg.latency_iters, cfg.size, cfg.size)
        row = measure(gen.backend, (cfg.size, cfg.size), batch=1, iterations=cfg.latency_iters, warmup=2, seed=cfg.seed)
        latency = {k: round(row["latency_ms"][k], 2) for k in ("p50", "min", "mean", "p90")}
        latency.update(iterations=cfg.latency_iters, threads=cfg.threads, backend=gen.info["backend"])
    for g in (gen, rev):
        if g is not None:
            g.backend.close()
    held_out = (1 - float(j_src.mean()) + float(j_tgt.mean())) / 2
    return make_report(
        command=command,
        machine={"cpu": cpu_model(), "cores": os.cpu_count(), "versions": loaded_versions()},
        direction=cfg.direction,
        size=cfg.size,
        data={"source": src_dir, "target": tgt_dir, "train_a": cfg.train_a, "train_b": cfg.train_b,
              "n_source": len(src), "n_target": len(tgt), "skipped_source": len(src_files) - len(src),
              "skipped_target": len(tgt_files) - len(tgt)},  # fmt: skip
        generator=gen.info,
        reverse=rev.info if rev else None,
        domain={
            "classifier": {**dataclasses.asdict(clf.recipe), **clf.info, "held_out_balanced_accuracy": held_out,
                           "source_judged_target": float(j_src.mean()), "target_judged_target": float(j_tgt.mean())},
            "model": scored(out),
            "baselines": baselines,
        },  # fmt: skip
        cycle_l1=cycle_l1(src, cycled) if cycled is not None else None,
        edge_ssim=edge_ssim(src, out),
        checkerboard=checkerboard_score(src, out),
        latency_ms=latency,
        seconds=round(time.perf_counter() - t0, 1),
    )


class NeedsTorch(ImportError):
    """torch is missing: one line naming the extra that brings it (exit 1)."""


def run(argv: list[str] | None) -> int:
    require_python_310("evaluation")
    from cyclegan_edge.evaluate.config import parse_args
    from cyclegan_edge.evaluate.report import check_output, markdown, write_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    cfg, recipe = parse_args(argv)
    if cfg.missing_folders():
        raise UsageError(f"give --dataroot or {', '.join(cfg.missing_folders())}")
    if cfg.output:  # before any work: a report that cannot be written fails now, not after the evaluation
        check_output(cfg.output, [Path(p) for p in (cfg.generator, cfg.reverse) if p], cfg.overwrite)
    import_holding_ctrl_c(("torch",))  # not before: --help and usage errors need no torch
    try:
        import torch  # noqa: F401  (the domain classifier trains with it, whatever the generator's format)
    except ImportError:
        raise NeedsTorch("evaluate needs torch (its domain classifier trains with it): pip install "
                         "'cyclegan-edge[evaluate]'") from None  # fmt: skip
    report = evaluate(cfg, recipe, "python -m cyclegan_edge.evaluate " + shlex.join(argv))
    for c in report["caveats"]:
        logging.getLogger("cyclegan_edge.evaluate").warning("%s", c)
    print(markdown(report))
    if cfg.output:
        for p in write_report(report, cfg.output):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
