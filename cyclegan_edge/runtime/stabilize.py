"""Temporal stabilization of translated video, and the flicker metric that measures it.

A generator translates each frame on its own, so its textures shimmer from frame to frame. Both
tools here follow the motion of the *input* frames (optical flow), never the output's:

- ``warping_error`` / ``FlickerMeter``: the warping error of Lai et al. (ECCV 2018), the mean absolute
  difference between output t and output t-1 warped to t, over the pixels that forward-backward
  flow consistency marks as visible in both frames, in 0-255 levels (Lai et al. square the difference
  on a 0-1 scale; the absolute difference reads as grey levels). One flow method for every
  measurement: ``METRIC_FLOW``.
- ``Stabilizer``: a recursive filter that blends each output with the previous *filtered* output
  warped by cheap input flow (DIS ultrafast on a downscaled frame). Pixels that the flow cannot
  explain (occluded, disoccluded, or whose warped input does not match) keep the current output, so
  moving objects do not ghost; a scene cut in the input resets the filter.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.resize import resize_area

METRIC_SHORTER = 360
METRIC_FLOW = f"OpenCV DIS flow, medium preset, on grey input frames area-downscaled to shorter side {METRIC_SHORTER} px"
DEFAULT_WEIGHT = 0.7
FLOW_SHORTER = 180  # the stabilizer's flow resolution (shorter side, px)
FLOW_SLACK = 2.0  # squared px (at flow size) of forward-backward mismatch still consistent; measured in benchmarks/
MATCH_LEVELS = 16.0  # grey levels: a warped input pixel further off than this is not trusted
CUT_FRACTION = 0.2  # fewer fully trusted pixels than this (fraction of the frame) means a scene cut

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


def dis_flow(preset: str) -> Any:
    """An OpenCV DIS optical flow object (``ultrafast``, ``fast`` or ``medium``)."""
    return cv2().DISOpticalFlow_create(_PRESETS[preset])


def grey_at(frame: np.ndarray, shorter: int) -> np.ndarray:
    """A BGR or grey uint8 frame as grey, area-downscaled so that its shorter side is at most ``shorter``."""
    c = cv2()
    grey = c.cvtColor(frame, c.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return downscaled(grey, shorter)


def downscaled(image: np.ndarray, shorter: int) -> np.ndarray:
    """``image`` area-downscaled so that its shorter side is ``shorter`` (as it is when already no larger)."""
    c = cv2()
    h, w = image.shape[:2]
    if min(h, w) <= shorter:
        return image
    size = (max(1, round(w * shorter / min(h, w))), max(1, round(h * shorter / min(h, w))))
    k = min(h, w) // shorter
    if k >= 2:  # OpenCV's area resize is fast only for whole factors: that part first, on whole k x k blocks
        image = c.resize(image[: h - h % k, : w - w % k], (w // k, h // k), interpolation=c.INTER_AREA)
    return image if image.shape[1::-1] == size else c.resize(image, size, interpolation=c.INTER_AREA)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """HxWx2 float32 (x, y) pixel coordinates: ``grid + flow`` is a map for cv2.remap."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.dstack([xs, ys])


def flows(dis: Any, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(backward, forward) flow between two grey frames: cur(x) ~ prev(x + backward(x)) and
    prev(x) ~ cur(x + forward(x))."""
    return dis.calc(cur, prev, None), dis.calc(prev, cur, None)


def warp(image: np.ndarray, flow: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """``image`` sampled at x + flow(x): with a backward flow, the previous frame moved onto the current one."""
    if grid is None:
        grid = pixel_grid(*flow.shape[:2])
    c = cv2()
    return c.remap(image, grid + flow, None, c.INTER_LINEAR, borderMode=c.BORDER_REPLICATE)


def _sq_norm(flow: np.ndarray) -> np.ndarray:
    x, y = cv2().split(flow)  # far faster than summing over a last axis of size 2
    return x * x + y * y


def consistent(backward: np.ndarray, forward: np.ndarray, grid: np.ndarray | None = None,
               slack: float = 0.5) -> np.ndarray:  # fmt: skip
    """Boolean HxW: pixels of the current frame visible in the previous one, by the forward-backward
    test of Sundaram et al. (2010) that Lai et al. use (``slack`` in squared pixels), that land inside
    the previous frame."""
    if grid is None:
        grid = pixel_grid(*backward.shape[:2])
    fwd = warp(forward, backward, grid)
    ok = _sq_norm(backward + fwd) <= 0.01 * (_sq_norm(backward) + _sq_norm(fwd)) + slack
    h, w = backward.shape[:2]
    x, y = cv2().split(grid + backward)
    return ok & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def warping_error(prev_out: np.ndarray, cur_out: np.ndarray, backward: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean |cur_out - prev_out warped by ``backward``| over ``mask`` (0-255 levels); None if no pixel counts."""
    n = int(mask.sum())
    if n == 0:
        return None
    diff = np.abs(cur_out.astype(np.float32) - warp(prev_out, backward).astype(np.float32))
    if diff.ndim == 3:
        diff = diff.mean(-1)
    return float(diff[mask].sum() / n)


class FlickerMeter:
    """Lai et al.'s warping error over a stream of input frames and one or more output streams made from
    them (``update(source, *outputs)``, one frame of each at a time), all measured with the same input flow.

    Flow, mask and difference are computed at ``shorter`` px (``METRIC_FLOW``), so figures compare
    across sources and inference sizes. ``values`` holds each output stream's mean over frame pairs.
    """

    def __init__(self, shorter: int = METRIC_SHORTER) -> None:
        self.shorter = shorter
        self.errors: list[list[float]] = []  # per output stream, per frame pair
        self._dis = dis_flow("medium")
        self._prev: tuple[np.ndarray, list[np.ndarray]] | None = None
        self.mask: np.ndarray | None = None  # the last pair's visible pixels, at the metric's size

    def update(self, source: np.ndarray, *outputs: np.ndarray) -> list[float | None]:
        grey = grey_at(source, self.shorter)
        outs = [resize_area(downscaled(o, self.shorter), grey.shape[:2]) for o in outputs]
        errs: list[float | None] = [None] * len(outs)
        if not self.errors:
            self.errors = [[] for _ in outs]
        if self._prev is not None and self._prev[0].shape == grey.shape:
            back, fwd = flows(self._dis, self._prev[0], grey)
            mask = self.mask = consistent(back, fwd)
            errs = [warping_error(p, o, back, mask) for p, o in zip(self._prev[1], outs)]
            for stream, e in zip(self.errors, errs):
                if e is not None:
                    stream.append(e)
        self._prev = (grey, outs)
        return errs

    @property
    def values(self) -> list[float | None]:
        return [statistics.fmean(e) if e else None for e in self.errors]

    @property
    def value(self) -> float | None:
        return self.values[0] if self.errors else None


def flicker(sources: list[np.ndarray], *outputs: list[np.ndarray], shorter: int = METRIC_SHORTER) -> list[float | None]:
    """The warping error of whole clips: one value per output sequence (see ``FlickerMeter``)."""
    meter = FlickerMeter(shorter)
    for i, source in enumerate(sources):
        meter.update(source, *(o[i] for o in outputs))
    return meter.values


def trust(prev: np.ndarray, cur: np.ndarray, backward: np.ndarray, forward: np.ndarray,
          grid: np.ndarray | None = None, slack: float = FLOW_SLACK,
          match_levels: float = MATCH_LEVELS) -> np.ndarray:  # fmt: skip
    """Float32 HxW in [0, 1]: how far the previous grey frame warped by ``backward`` stands in for the
    current one. Zero where the flow is inconsistent (occlusion, disocclusion) or leaves the frame,
    grown by a pixel so that the edges of moving objects stay out; fading from 1 to 0 as the warped
    grey input misses the current one by ``match_levels / 2`` to ``match_levels``."""
    c = cv2()
    visible = c.erode(consistent(backward, forward, grid, slack).astype(np.uint8), np.ones((3, 3), np.uint8))
    fade = np.clip(2.0 - np.arange(256, dtype=np.float32) * (2.0 / match_levels), 0.0, 1.0)  # by grey levels missed
    return fade[c.absdiff(warp(prev, backward, grid), cur)] * visible


class Stabilizer:
    """Per-stream recursive filter: out_t = (1 - a) * output_t + a * warp(out_{t-1}), a = weight * trust.

    Call it with each (input, output) frame pair in order; it returns the filtered output, at the
    output's size (the input may be larger: only its downscaled grey is used). Flow is DIS
    ultrafast between grey inputs downscaled to ``flow_shorter`` px, scaled up to the output's
    size. A frame where under ``cut_fraction`` of the pixels are fully trusted is a scene cut: it
    comes out unfiltered and restarts the filter.
    """

    def __init__(self, weight: float = DEFAULT_WEIGHT, flow_shorter: int = FLOW_SHORTER,
                 cut_fraction: float = CUT_FRACTION) -> None:  # fmt: skip
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"stabilize weight must be in [0, 1), got {weight}")
        self.weight, self.flow_shorter, self.cut_fraction = weight, flow_shorter, cut_fraction
        self.cuts = 0
        self._dis = dis_flow("ultrafast")
        self._prev_grey: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        self._grids: dict[tuple[int, int], np.ndarray] = {}

    def _grid(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._grids:
            if len(self._grids) >= 4:  # sizes changed (a new stream): drop the old ones
                self._grids.clear()
            self._grids[(h, w)] = pixel_grid(h, w)
        return self._grids[(h, w)]

    def resume_from(self, source: np.ndarray, output: np.ndarray) -> None:
        """Continue a stream as if the pair (``source``, ``output``) had just come through (a resumed conversion's
        last written frame, so that the first new one is blended with it instead of jumping)."""
        self._prev_grey = grey_at(source, min(self.flow_shorter, *output.shape[:2]))
        self._prev_out = output

    def __call__(self, source: np.ndarray, output: np.ndarray) -> np.ndarray:
        c = cv2()
        oh, ow = output.shape[:2]
        grey = grey_at(source, min(self.flow_shorter, oh, ow))
        prev_grey, prev_out = self._prev_grey, self._prev_out
        self._prev_grey, self._prev_out = grey, output
        if prev_grey is None or prev_out is None or prev_grey.shape != grey.shape or prev_out.shape != output.shape:
            return output
        h, w = grey.shape
        back, fwd = flows(self._dis, prev_grey, grey)
        t = trust(prev_grey, grey, back, fwd, self._grid(h, w))
        if float((t >= 1.0).mean()) < self.cut_fraction:
            self.cuts += 1
            return output
        alpha = t * self.weight
        if (h, w) != (oh, ow):
            x, y = c.split(back)  # numpy broadcasting over a last axis of size 2 is 20x slower
            back = c.resize(c.merge([x * (ow / w), y * (oh / h)]), (ow, oh), interpolation=c.INTER_LINEAR)
            alpha = c.resize(alpha, (ow, oh), interpolation=c.INTER_LINEAR)
        # fixed-point maps (1/32 px; a grey level or two from float ones): the 720p remap ~1.2x faster, 0.8 ms to make
        maps = c.convertMaps(self._grid(oh, ow) + back, None, c.CV_16SC2)
        warped = c.remap(prev_out, *maps, c.INTER_LINEAR, borderMode=c.BORDER_REPLICATE)
        out = c.blendLinear(warped, output, alpha, 1.0 - alpha)
        self._prev_out = out
        return out


def weight_arg(text: str) -> float:
    """An argparse ``type`` for a blend weight: a number in (0, 1)."""
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not 0.0 < weight < 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a blend weight between 0 and 1 (exclusive)")
    return weight
