"""Parse NVIDIA Jetson ``tegrastats`` lines (JetPack 4 to 7), and sample them during a run.

Fields vary by module and release: power rails are ``NAME cur/avg`` (JetPack 4, mW implied) or
``NAME curmW/avgmW[/maxmW]`` (JetPack 5+); temperatures ``NAME@42.5C`` (``-256C``: sensor off);
GPU load ``GR3D_FREQ 12%@1300`` or ``12%@[1300,1300]``. Missing fields are simply absent.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GR3D = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?@\[?(\d+)")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%@(\d+)")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?![\dMk])")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})
# The rails that measure the whole module's input, when a module has one.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
SENSOR_OFF = -256.0


@dataclass
class TegraSample:
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    cpu_load: list[float | None] = field(default_factory=list)  # None: core off
    gpu_load: float | None = None
    gpu_mhz: int | None = None
    emc_load: float | None = None
    temps_c: dict[str, float] = field(default_factory=dict)
    power_mw: dict[str, int] = field(default_factory=dict)  # instantaneous

    @property
    def total_power_mw(self) -> int | None:
        """The module input rail when there is one, else the sum of the reported rails."""
        for rail in INPUT_RAILS:
            if rail in self.power_mw:
                return self.power_mw[rail]
        return sum(self.power_mw.values()) if self.power_mw else None


def parse_line(line: str) -> TegraSample:
    s = TegraSample()
    if m := _RAM.search(line):
        s.ram_used_mb, s.ram_total_mb = int(m.group(1)), int(m.group(2))
    if m := _CPU.search(line):
        for core in m.group(1).split(","):
            load = core.split("%")[0]
            s.cpu_load.append(float(load) if load.strip().isdigit() else None)
    if m := _GR3D.search(line):
        s.gpu_load = float(m.group(1)) if m.group(1) is not None else None
        s.gpu_mhz = int(m.group(2))
    if m := _EMC.search(line):
        s.emc_load = float(m.group(1))
    for name, value in _TEMP.findall(line):
        if float(value) != SENSOR_OFF:
            s.temps_c[name] = float(value)
    for name, cur, *_ in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            s.power_mw[name] = int(cur)
    return s


def summarize(samples: list[TegraSample]) -> dict[str, Any]:
    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    rails = sorted({r for s in samples for r in s.power_mw})
    temps = sorted({t for s in samples for t in s.temps_c})
    return {
        "samples": len(samples),
        "power_mw_mean": {r: mean([s.power_mw[r] for s in samples if r in s.power_mw]) for r in rails},
        "total_power_mw_mean": mean([p for s in samples if (p := s.total_power_mw) is not None]),
        "gpu_load_mean": mean([s.gpu_load for s in samples if s.gpu_load is not None]),
        "temp_c_max": {t: max(s.temps_c[t] for s in samples if t in s.temps_c) for t in temps},
    }


def mean_power_mw(samples: list[TegraSample]) -> float | None:
    """The module's mean power over ``samples`` (see ``TegraSample.total_power_mw``), None without any."""
    return summarize(samples)["total_power_mw_mean"] if samples else None


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` in the background; ``stop()`` returns the samples, ``during(windows)`` those
    taken inside time.monotonic() windows (a bench case's timed calls)."""

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats") -> None:
        self.cmd = [command, "--interval", str(interval_ms)]
        self.samples: list[TegraSample] = []
        self.times: list[float] = []  # time.monotonic() when each sample's line came
        self.proc: subprocess.Popen[str] | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> bool:
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except (FileNotFoundError, PermissionError):
            return False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return True

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.samples.append(parse_line(line))
            self.times.append(time.monotonic())

    def during(self, windows: list[tuple[float, float]]) -> list[TegraSample]:
        return [s for s, t in zip(self.samples, self.times) if any(a <= t <= b for a, b in windows)]

    def stop(self) -> list[TegraSample]:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        if self.thread is not None:
            self.thread.join(timeout=5)
        return self.samples
