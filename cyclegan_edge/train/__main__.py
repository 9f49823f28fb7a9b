from __future__ import annotations

import logging
import sys

from cyclegan_edge import require_python_310


def main(argv: list[str] | None = None) -> int:
    require_python_310("training")
    from cyclegan_edge.train.config import parse_config
    from cyclegan_edge.train.data import DataError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = parse_config(argv)
    from cyclegan_edge.train.trainer import Trainer

    try:
        return Trainer(cfg).fit()
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
