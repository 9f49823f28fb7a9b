"""``python -m cyclegan_edge.distill``: make a small student generator from a big teacher (see ``train/distill.py``)."""

import sys

if __name__ == "__main__":
    from cyclegan_edge import require_python_310

    require_python_310("distillation")
    from cyclegan_edge.train.distill import main

    sys.exit(main())
