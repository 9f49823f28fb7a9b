from __future__ import annotations

import logging
import os
import sys

from cyclegan_edge import require_python_310


def main(argv: list[str] | None = None) -> int:
    require_python_310("training")
    from cyclegan_edge.train.config import parse_config
    from cyclegan_edge.train.data import DataError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = parse_config(argv)
        from cyclegan_edge.train.trainer import Trainer, prepare_run_dir

        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone decides; the others follow it
            moved = prepare_run_dir(cfg)
            if moved:
                logging.getLogger("cyclegan_edge.train").warning("%s", moved)
        return Trainer(cfg).fit()
    except (DataError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
