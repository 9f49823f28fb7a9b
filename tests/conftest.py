from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CYCLEGAN_EDGE_DATA", ROOT.parent / "shared" / "data"))
COMPRESSED_G = SHARED_DATA / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth"
HORSES = SHARED_DATA / "horse2zebra" / "testA"
STREET_VIDEO = SHARED_DATA / "videos" / "car-detection.mp4"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not present: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def compressed_g_path() -> Path:
    return need(COMPRESSED_G)


@pytest.fixture(scope="session")
def horse_paths() -> list[Path]:
    return sorted(need(HORSES).glob("*.jpg"))


@pytest.fixture(scope="session")
def street_video() -> Path:
    return need(STREET_VIDEO)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
