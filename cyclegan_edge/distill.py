"""``python -m cyclegan_edge.distill``: make a small student generator from a big teacher (see ``train/distill.py``)."""

import sys


def run(argv: "list[str] | None") -> int:
    from cyclegan_edge import require_python_310
    from cyclegan_edge.errors import import_holding_ctrl_c

    require_python_310("distillation")
    from cyclegan_edge.train.config import parse_distill_config

    cfg = parse_distill_config(argv)  # before torch: --help and usage errors come at once
    import_holding_ctrl_c(("torch",))
    from cyclegan_edge.train.distill import distill

    return distill(cfg)


if __name__ == "__main__":
    from cyclegan_edge.errors import run_cli

    sys.exit(run_cli(run))
