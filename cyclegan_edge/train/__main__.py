from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from cyclegan_edge import require_python_310


def model_of(argv: list[str] | None) -> str:
    """``--model``; without it, a resumed run's own (its config.json), else cyclegan."""
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--model", "--name", "--output"):
        ap.add_argument(flag)
    ap.add_argument("--resume", action="store_true")
    known, _ = ap.parse_known_args(argv)
    if known.model:
        return str(known.model)
    saved = Path(known.output or "runs") / (known.name or "run") / "config.json"
    if known.resume and saved.is_file():
        try:
            return str(json.loads(saved.read_text()).get("model", "cyclegan"))
        except ValueError:
            pass  # parse_config reports the unreadable file
    return "cyclegan"


def main(argv: list[str] | None = None) -> int:
    require_python_310("training")
    from cyclegan_edge.train.config import parse_config
    from cyclegan_edge.train.data import DataError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        from cyclegan_edge.train.trainer import Trainer, prepare_run_dir

        trainer: type[Trainer] = Trainer
        if model_of(argv) == "pix2pix":
            from cyclegan_edge.train.pix2pix import Pix2Pix, Pix2PixConfig

            trainer = Pix2Pix
            cfg = parse_config(argv, Pix2PixConfig, description="Train a pix2pix generator G: A->B on paired data "
                               "(torchrun for several GPUs/processes).")  # fmt: skip
        else:
            cfg = parse_config(argv)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone decides; the others follow it
            moved = prepare_run_dir(cfg)
            if moved:
                logging.getLogger("cyclegan_edge.train").warning("%s", moved)
        return trainer(cfg).fit()
    except (DataError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
