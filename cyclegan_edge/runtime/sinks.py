"""Frame sinks: video files (finalized even when interrupted), image folders, a window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.io import write_image

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class SinkError(RuntimeError):
    pass


class Sink:
    """write() takes a frame and a one-line status (FPS, latency); only a window shows the status."""

    name: str

    def write(self, frame: np.ndarray, status: str = "") -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def quit_requested(self) -> bool:
        return False


class VideoFileSink(Sink):
    """Writes to a hidden temporary file beside the target and renames it on close, so the target
    path only ever holds a finalized, playable file (also after Ctrl-C or an error)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ext = self.path.suffix.lower()
        if ext not in FOURCC:
            raise SinkError(f"{self.path}: unsupported video extension (use one of {', '.join(FOURCC)})")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{ext}")
        h, w = size
        self.writer = cv2().VideoWriter(str(self.tmp), cv2().VideoWriter_fourcc(*FOURCC[ext]), fps, (w, h))
        if not self.writer.isOpened():
            raise SinkError(f"{self.path}: OpenCV cannot write this video format here")
        self.size, self.frames = size, 0

    def write(self, frame: np.ndarray, status: str = "") -> None:
        if frame.shape[:2] != self.size:
            frame = cv2().resize(frame, (self.size[1], self.size[0]))
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if self.frames:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class ImageFolderSink(Sink):
    def __init__(self, folder: str | os.PathLike[str], ext: str = ".png") -> None:
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.ext, self.frames = ext, 0

    def write(self, frame: np.ndarray, status: str = "") -> None:
        write_image(self.folder / f"frame_{self.frames:06d}{self.ext}", frame)
        self.frames += 1


def display_available() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2().getBuildInformation()
    return any(f"{gui}:" in info and "NO" not in info.split(f"{gui}:")[1].split("\n")[0]
               for gui in ("GTK", "GTK+", "QT", "Win32 UI", "Cocoa"))  # fmt: skip


class WindowSink(Sink):
    """cv2.imshow; 'q' or Esc in the window asks the pipeline to stop."""

    def __init__(self, title: str = "cyclegan-edge") -> None:
        self.name, self.title, self._quit = "window", title, False
        cv2().namedWindow(title, cv2().WINDOW_NORMAL)

    def write(self, frame: np.ndarray, status: str = "") -> None:
        if status:
            frame = frame.copy()
            c = cv2()
            (w, h), base = c.getTextSize(status, c.FONT_HERSHEY_SIMPLEX, 0.6, 1)
            c.rectangle(frame, (4, 4), (12 + w, 12 + h + base), (0, 0, 0), -1)  # readable on any image
            c.putText(frame, status, (8, 8 + h), c.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, c.LINE_AA)
        cv2().imshow(self.title, frame)
        if cv2().waitKey(1) & 0xFF in (ord("q"), 27):
            self._quit = True

    @property
    def quit_requested(self) -> bool:
        return self._quit

    def close(self) -> None:
        cv2().destroyWindow(self.title)


class MultiSink(Sink):
    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.name = " + ".join(s.name for s in sinks)

    def write(self, frame: np.ndarray, status: str = "") -> None:
        for s in self.sinks:
            s.write(frame, status)

    @property
    def quit_requested(self) -> bool:
        return any(s.quit_requested for s in self.sinks)

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class MemorySink(Sink):
    """Keeps every frame in a list (for the Python API and for checking a run)."""

    def __init__(self) -> None:
        self.name = "memory"
        self.frames_list: list[np.ndarray] = []

    def write(self, frame: np.ndarray, status: str = "") -> None:
        self.frames_list.append(frame.copy())
