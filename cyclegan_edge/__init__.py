"""cyclegan-edge: CycleGAN from training to real-time use on edge GPUs."""

import sys
from pathlib import Path

__version__ = "0.1.0"

ASSETS_DIR = Path(__file__).resolve().parent / "assets"  # bundled demo model, clip and images


def require_python_310(what: str) -> None:
    """Training and export need Python 3.10+; running and benchmarking also work on 3.8 (JetPack 5)."""
    if sys.version_info < (3, 10):
        sys.exit(f"error: {what} needs Python 3.10 or newer (this is {sys.version.split()[0]}); "
                 "python -m cyclegan_edge.runtime and .bench also run on 3.8")  # fmt: skip
