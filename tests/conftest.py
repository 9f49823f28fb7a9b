from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Fixed thread counts in every math library, so that numbers repeat run after run on one machine (subprocesses
# inherit them). Set before numpy loads: OpenBLAS reads them once. Under pytest-xdist (the README's `-n logical`)
# the workers share the cores instead of each taking all of them: oversubscribed OpenMP threads spin and crawl.
# The controller loads this file too and its workers inherit what it set: a worker replaces counts set here (the
# marker says so), never a user's own.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
if os.environ.get("CYCLEGAN_EDGE_TEST_THREADS") == "set here" or not any(v in os.environ for v in _THREAD_VARS):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    for _var in _THREAD_VARS:
        os.environ[_var] = str(max(1, min(2, (os.cpu_count() or 1) // _workers)))
    os.environ["CYCLEGAN_EDGE_TEST_THREADS"] = "set here"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CYCLEGAN_EDGE_DATA", ROOT.parent / "shared" / "data"))
COMPRESSED_G = SHARED_DATA / "weights" / "horse2zebra_gan_compression" / "latest_net_G.pth"
HORSES = SHARED_DATA / "horse2zebra" / "testA"
STREET_VIDEO = SHARED_DATA / "videos" / "car-detection.mp4"
# what a test's subprocess adds to os.environ: one thread in every math library, so that it neither fights the
# test process for the cores nor mixes thread counts between OpenMP and MKL
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def interrupt_when(cmd: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None,
                   timeout: float = 120, sig: int = signal.SIGINT) -> tuple[int, str, str]:  # fmt: skip
    """Run ``cmd``, send SIGINT as a terminal's Ctrl-C does (or ``sig``: SIGTERM as `timeout` does) once ``ready()``
    (or after ``timeout`` s), and return its exit status, stdout and stderr. SIGINT is restored in the child: a
    suite started in the background (`cmd &` in a script) hands its children SIGINT ignored, and Python then never
    raises KeyboardInterrupt."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # not left running behind the suite
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def as_user() -> list[str]:
    """The command prefix under which a read-only folder is read-only for the command: root writes there anyway,
    so as root the command runs without the capabilities that let it (setpriv)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root writes into read-only folders and setpriv is not here to drop that")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


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


MARGINS: list[tuple[str, str, float, str, float]] = []


@pytest.fixture
def margin(request: pytest.FixtureRequest) -> Any:
    """Record a measured value beside the bar a test holds it to; every run prints them at the end, so a
    threshold's margin is visible on each machine kind (see benchmarks/test_margins.md)."""

    def record(quantity: str, value: float, op: str, bar: float) -> float:
        MARGINS.append((request.node.name, quantity, float(value), op, float(bar)))
        return value

    return record


def machine_lines() -> list[str]:
    from cyclegan_edge.machine import cpu_flags, cpu_model, library_versions

    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items() if v)
    return [f"machine: {cpu_model()}, {os.cpu_count()} cores; vector flags: {' '.join(cpu_flags()) or 'none'}",
            f"libraries: {versions}"]  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # an xdist worker hands its margins back
    if workeroutput is not None:
        workeroutput["margins"] = json.dumps(MARGINS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    MARGINS.extend(tuple(m) for m in json.loads(getattr(node, "workeroutput", {}).get("margins", "[]")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A red run says where it ran (also under -q, which hides the header): CPU, vector units, library versions."""
    if MARGINS:
        terminalreporter.write_line("threshold margins (measured value, bar):")
        for test, quantity, value, op, bar in MARGINS:
            terminalreporter.write_line(f"  {test}: {quantity} = {value:.4g} (bar {op} {bar:g})")
    for line in machine_lines():
        terminalreporter.write_line(line)
