"""How busy other processes kept the machine while something was measured: a steady load slows every call alike,
so no latency spread shows it, yet the figures are not an idle machine's."""

from __future__ import annotations

import time
from typing import Any

# CPUs other processes may keep busy meanwhile: measured here 0.0 on an idle machine, 0.5 with one busy loop beside
# a measurement that used both of 2 cores
OTHERS_BUSY_CPUS = 0.25
MIN_WINDOW_S = 1.0  # shorter windows are not judged (OtherLoad.cpus): the counters' ticks would decide


class OtherLoad:
    """The CPUs that other processes kept busy from its creation to ``cpus()``: the machine's busy time less this
    process's own, over the wall time (psutil, in the bench extra; None without it)."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self.psutil: Any = None
            return
        self.psutil = psutil
        self.start = self._times()

    def _times(self) -> tuple[float, float, float]:
        """(wall clock, the machine's busy CPU seconds, this process's CPU seconds)."""
        machine, own = self.psutil.cpu_times(), self.psutil.Process().cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        guests = getattr(machine, "guest", 0.0) + getattr(machine, "guest_nice", 0.0)  # counted in user already
        return time.perf_counter(), sum(machine) - idle - guests, own.user + own.system

    def seconds(self) -> tuple[float, float] | None:
        """(CPU seconds other processes used, wall seconds) since its creation; None without psutil. Windows add up:
        a case timed in short rounds is judged over all of them (cpus_over)."""
        if self.psutil is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self.start, self._times()
        return max(0.0, (busy1 - busy0) - (own1 - own0)), t1 - t0

    def cpus(self) -> float | None:
        """None without psutil, or over less than MIN_WINDOW_S (see cpus_over)."""
        return cpus_over(self.seconds())


def cpus_over(seconds: tuple[float, float] | None) -> float | None:
    """Others' CPUs from (CPU seconds, wall seconds); None over less than MIN_WINDOW_S: the machine's counters tick in
    10 ms steps, this process's are exact, so one tick over 30 ms already reads as 0.33 CPUs (an idle machine
    flagged)."""
    if seconds is None or seconds[1] < MIN_WINDOW_S:
        return None
    return seconds[0] / seconds[1]
