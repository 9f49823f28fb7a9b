"""Benchmarks: latency, throughput, memory and power reports."""

CALIB_COUNT = 32  # INT8 calibration images bench reads (spread over the --calib folder)
