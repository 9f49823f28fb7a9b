from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cyclegan_edge import require_python_310
from cyclegan_edge.errors import import_holding_ctrl_c, run_cli


def model_of(argv: list[str] | None) -> str:
    """``--model``; without it, a resumed run's own (its config.json), else cyclegan."""
    ap = argparse.ArgumentParser(add_help=False)  # abbreviations as the command's own parser takes them
    for flags in (("--model",), ("--name",), ("--output", "-o")):
        ap.add_argument(*flags)
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


def run(argv: list[str] | None) -> int:
    require_python_310("training")
    from cyclegan_edge.train.config import parse_config, parse_pix2pix_config

    pix2pix = model_of(argv) == "pix2pix"
    cfg = parse_pix2pix_config(argv) if pix2pix else parse_config(argv)  # before torch: --help and usage errors at once
    import_holding_ctrl_c(("torch",))
    from cyclegan_edge.train.run_dir import log_to_stderr, run_lock, start_run
    from cyclegan_edge.train.trainer import Trainer, check_init_from

    trainer: type[Trainer] = Trainer
    if pix2pix:
        from cyclegan_edge.train.config import Pix2PixConfig
        from cyclegan_edge.train.pix2pix import Pix2Pix, pix2pix_generator

        assert isinstance(cfg, Pix2PixConfig)
        trainer = Pix2Pix
        pix2pix_generator(cfg)  # before start_run, as below
    else:
        log_to_stderr()
        check_init_from(cfg)  # before start_run: a bad file must not cost an --overwrite its old run
    start_run(cfg)  # its refusals first: a run inside the training images gets no lock file (or folder) there
    with run_lock(cfg):
        return trainer(cfg).fit()


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
