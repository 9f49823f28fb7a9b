"""Benchmarks: latency, throughput, memory and power reports."""

from dataclasses import dataclass

CALIB_COUNT = 32  # INT8 calibration images bench reads (spread over the --calib folder)


@dataclass(frozen=True)
class Timing:
    """How each case is timed: the command's defaults (argparse reads them here)."""

    iterations: int = 10  # timed calls per variant, size and batch, in each round
    warmup: int = 5  # untimed calls before each round's timed ones
    rounds: int = 3  # rounds taken in turn over all cases
