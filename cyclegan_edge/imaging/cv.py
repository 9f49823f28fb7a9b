"""The one place that imports OpenCV, so a missing cv2 gives one line naming the fix."""

from __future__ import annotations

from types import ModuleType

CV2_HINT = (
    "OpenCV (cv2) is not importable: on a desktop run `pip install 'cyclegan-edge[opencv]'` "
    "(or [opencv-headless] for servers); on Jetson keep JetPack's GStreamer build: "
    "`sudo apt install python3-opencv` and create the venv with --system-site-packages"
)


class MissingDependency(RuntimeError):
    pass


def cv2() -> ModuleType:
    try:
        import cv2 as _cv2
    except ImportError:
        raise MissingDependency(CV2_HINT) from None
    return _cv2
