"""The one place that imports OpenCV, so a missing cv2 gives one line naming the fix."""

from __future__ import annotations

import os
from types import ModuleType

CV2_HINT = (
    "OpenCV (cv2) is not importable: on a desktop run `pip install 'cyclegan-edge[opencv]'` "
    "(or [opencv-headless] for servers); on Jetson keep JetPack's GStreamer build: "
    "`sudo apt install python3-opencv` and create the venv with --system-site-packages"
)


class MissingDependency(RuntimeError):
    pass


def cv2() -> ModuleType:
    # OpenCV's own [ WARN ] lines (a camera index that does not open, a codec probe) would precede our one-line
    # error; errors stay visible. OPENCV_LOG_LEVEL set by the user wins.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2 as _cv2
    except ImportError:
        raise MissingDependency(CV2_HINT) from None
    return _cv2
