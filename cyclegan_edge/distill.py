"""``python -m cyclegan_edge.distill``: make a small student generator from a big teacher (see ``train/distill.py``)."""

import sys


def run(argv: "list[str] | None") -> int:
    from cyclegan_edge import require_python_310

    require_python_310("distillation")
    from cyclegan_edge.train.distill import run

    return run(argv)


if __name__ == "__main__":
    from cyclegan_edge.errors import run_cli

    sys.exit(run_cli(run, preload=("torch",)))
