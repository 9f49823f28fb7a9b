"""Convert every video and image of a folder: resumable, keeps going past bad files."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ImageReadError, read_image, relative_to, write_image
from cyclegan_edge.runtime.backends import Backend, translate_frames
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, output_size
from cyclegan_edge.runtime.sinks import VideoFileSink
from cyclegan_edge.runtime.sources import SourceError, open_source


@dataclass
class FileResult:
    path: Path
    output: Path | None
    status: str  # done | skipped (exists) | failed: reason | interrupted
    frames: int = 0
    fps: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed") or self.status == "interrupted"


def output_for(src: Path, in_dir: Path, out_dir: Path) -> Path:
    rel = src.relative_to(in_dir)
    ext = ".mp4" if src.suffix.lower() in VIDEO_EXTENSIONS else ".png"
    return out_dir / rel.with_suffix(ext)


def video_frame_count(path: Path) -> int:
    cap = cv2().VideoCapture(str(path))
    try:
        return int(cap.get(cv2().CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def already_done(src: Path, out: Path) -> bool:
    """Images are written atomically, so existing means done; a video is done when it holds as
    many frames as its source (an interrupted conversion leaves a shorter, playable file)."""
    if not out.is_file():
        return False
    if src.suffix.lower() in VIDEO_EXTENSIONS:
        return video_frame_count(out) >= video_frame_count(src) > 0
    return True


def convert_video(src: Path, out: Path, backend: Backend, opts: PipelineOptions, position: int = 1) -> FileResult:
    try:
        source = open_source(str(src))
    except SourceError as e:
        return FileResult(src, None, f"failed: {str(e).split(': ', 1)[-1]}")
    bar = tqdm(total=source.frame_count or None, desc=src.name, unit="frame", position=position, leave=False)
    sink = VideoFileSink(out, source.fps, output_size(source.size, opts))

    def tick(stats: object) -> None:
        bar.update(1)

    try:
        stats = Pipeline(source, backend, sink, opts, on_frame=tick).run()
    finally:
        source.close()
        bar.close()
    if stats.error:
        return FileResult(src, out if stats.frames_out else None, f"failed: {stats.error}", stats.frames_out, stats.fps)
    if stats.interrupted:
        return FileResult(src, out, "interrupted", stats.frames_out, stats.fps)
    return FileResult(src, out, "done", stats.frames_out, stats.fps)


def convert_image(src: Path, out: Path, backend: Backend) -> FileResult:
    try:
        img = read_image(src)
    except ImageReadError as e:
        return FileResult(src, None, f"failed: {str(e).split(': ', 1)[-1]}")
    t = time.perf_counter()
    write_image(out, translate_frames(backend, [img])[0])
    return FileResult(src, out, "done", 1, 1.0 / max(time.perf_counter() - t, 1e-9))


def convert_folder(in_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], backend: Backend,
                   opts: PipelineOptions, overwrite: bool = False) -> list[FileResult]:  # fmt: skip
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = sorted(p for p in in_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    results: list[FileResult] = []
    for src in tqdm(files, desc="files", unit="file", position=0):
        ext = src.suffix.lower()
        if ext not in VIDEO_EXTENSIONS and ext not in IMAGE_EXTENSIONS:
            results.append(FileResult(src, None, "skipped (not an image or video)"))
            continue
        out = output_for(src, in_dir, out_dir)
        if not overwrite and already_done(src, out):
            results.append(FileResult(src, out, "skipped (exists)"))
            continue
        try:
            if ext in VIDEO_EXTENSIONS:
                res = convert_video(src, out, backend, opts)
            else:
                res = convert_image(src, out, backend)
        except KeyboardInterrupt:
            results.append(FileResult(src, out if out.exists() else None, "interrupted"))
            break
        results.append(res)
        if res.status == "interrupted":
            break
    return results


def summary_table(results: list[FileResult], root: Path) -> str:
    rows = [("file", "frames", "fps", "status")]
    for r in results:
        name = str(relative_to(r.path, root) or r.path)
        rows.append((name, str(r.frames), f"{r.fps:.1f}" if r.frames else "-", r.status))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
