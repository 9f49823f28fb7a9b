"""``python -m cyclegan_edge.translate``: kept as an alias; the front-end lives in ``cyclegan_edge.runtime.translate``."""

import sys

from cyclegan_edge.runtime.translate import main

if __name__ == "__main__":
    sys.exit(main())
