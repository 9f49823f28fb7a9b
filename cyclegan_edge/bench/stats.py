"""Latency statistics: percentiles by linear interpolation (NumPy's default, "type 7")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


def latency_stats(times_ms: Sequence[float], batch: int = 1) -> dict[str, float]:
    """min/mean/p50/p90/p99/max in ms, and throughput in frames/s (batch frames per call,
    from the mean latency)."""
    if len(times_ms) == 0:
        raise ValueError("no timings")
    t = np.asarray(times_ms, dtype=np.float64)
    out = {"min": float(t.min()), "mean": float(t.mean())}
    out.update({f"p{p}": float(np.percentile(t, p)) for p in PERCENTILES})
    out["max"] = float(t.max())
    out["fps"] = float(batch * 1000.0 / t.mean())
    return out
