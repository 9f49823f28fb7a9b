"""Convert every video and image of a folder or glob: resumable, keeps going past bad files, stops at the first
output that cannot be written (the destination is the problem then, not the file)."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cyclegan_edge.errors import first_line
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    OutputPathError,
    check_outputs,
    mark_output_folder,
    markable_output_folder,
    output_path,
    relative_to,
    unique_outputs,
    without_earlier_outputs,
)
from cyclegan_edge.imaging.io import (
    ALPHA_EXTENSIONS,
    JOB_KEYWORD,
    ImageReadError,
    png_text,
    read_image_and_alpha,
    write_image,
)
from cyclegan_edge.progress import progress_bar
from cyclegan_edge.runtime.backends import Backend, translate_frames
from cyclegan_edge.runtime.pipeline import (
    Pipeline,
    PipelineOptions,
    PipelineStats,
    after_resume,
    inference_size,
    large_note,
    output_size,
    too_small,
    upscale_note,
)
from cyclegan_edge.runtime.sinks import EncodeSettings, OutputExists, SinkError, WriteFailed, open_output
from cyclegan_edge.runtime.sources import SourceError, glob_root, open_source, pyav

log = logging.getLogger("cyclegan_edge.runtime")
SKIPPED_EXISTS, NOT_STARTED = "skipped (exists)", "not started"
NOT_TRIED = "not tried (an output could not be written)"
SKIPPED_OTHER = "skipped (exists, from another conversion)"  # a finished video whose key is not this run's


@dataclass
class FileResult:
    path: Path
    output: Path | None
    status: str  # done | done (resumed after N) | skipped (...) | failed | interrupted | not started
    frames: int = 0
    fps: float = 0.0
    flicker: float | None = None  # warping error of the output (--flicker)
    error: str | None = None  # why it failed (status "failed"): one line, without the file's name
    write_failed: bool = False  # the output could not be written (a full disk, a read-only folder): the batch stops

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def stopped(self) -> bool:
        """Interrupted (Ctrl-C), or never started because of it: the same command continues it."""
        return self.status in ("interrupted", NOT_STARTED)

    @property
    def shown(self) -> str:
        """The summary table's status column."""
        return f"failed: {self.error}" if self.error is not None else self.status


def failure(src: Path, error: str, output: Path | None = None, frames: int = 0, fps: float = 0.0,
            write_failed: bool = False) -> FileResult:  # fmt: skip
    return FileResult(src, output, "failed", frames, fps, error=error, write_failed=write_failed)


def without_name(error: Exception) -> str:
    """An error's line less the ``path: `` it starts with (the table names the file already)."""
    return str(error).split(": ", 1)[-1]


def video_frame_count(path: Path) -> int:
    cap = cv2().VideoCapture(str(path))
    try:
        return int(cap.get(cv2().CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def model_digest(model: str | os.PathLike[str]) -> str:
    """A model file's SHA-256 (what names it when it is no file)."""
    from cyclegan_edge.atomic import sha256_file

    return sha256_file(model) if Path(model).is_file() else str(model)


def source_digest(src: Path) -> str:
    """What an image output keeps of its source (SOURCE_KEYWORD): the file's SHA-256, shortened."""
    from cyclegan_edge.atomic import sha256_file

    return sha256_file(src)[:32]


def image_job(digest: str, opts: PipelineOptions) -> str:
    """What shapes an image's translation, the model's bytes, the inference size and --side-by-side: written into
    each PNG (``write_image``), so that a rerun tells its own outputs from another model's."""
    both = " side-by-side" if opts.side_by_side else ""  # absent otherwise: earlier outputs keep their key
    return hashlib.sha256(f"{digest} size={opts.size}{both}".encode()).hexdigest()[:32]


def check_same_job(pairs: Iterable[tuple[Path, Path]], out_dir: Path, image_job: str) -> None:
    """OutputExists when image outputs that exist (``pairs``: source, output) were made by another job: their PNG
    names another ``image_job`` (model, --size). Kept as they are, they would pass for this run's. Images that
    name no job (older versions, other tools) pass. (A video's key also holds its encoder and PyAV's version, which
    change on their own: a batch reports those rows instead, see ``other_conversion``.)"""
    if not image_job:
        return
    others = [out for _, out in pairs if out.suffix.lower() in IMAGE_EXTENSIONS
              and png_text(out, JOB_KEYWORD) not in (None, image_job)]  # fmt: skip
    if others:
        n = len(others)
        raise OutputExists(f"{out_dir} holds {n} output{'' if n == 1 else 's'} made with another model or other "
                           f"settings (first: {others[0]}): --overwrite replaces them, or give another output "
                           "folder")  # fmt: skip


def other_conversion(src: Path, out: Path, video_key: Callable[[Path], str | None]) -> bool:
    """Whether a finished video output was made by another conversion of ``src`` (another model, settings,
    encoder or PyAV version: its key differs); False where either key is unknown."""
    av_video = pyav()
    held = av_video.held_key(out) if av_video is not None else None
    if held is None:
        return False
    expected = video_key(src)
    return expected is not None and held != expected


def video_key_for(opts: PipelineOptions, settings: EncodeSettings | None, job: tuple[object, ...]
                  ) -> Callable[[Path], str | None]:  # fmt: skip
    """The conversion key a video's output would hold (see av_video.conversion_key); None where PyAV does not
    read the source."""
    def key(src: Path) -> str | None:
        av_video = pyav()
        try:
            source = open_source(str(src))
        except SourceError:
            return None
        try:
            if av_video is None or not isinstance(source, av_video.AvSource):
                return None
            return str(av_video.conversion_key(source, output_size(source.size, opts), settings or EncodeSettings(),
                                               job))  # fmt: skip
        finally:
            source.close()

    return key


def already_done(src: Path, out: Path) -> bool:
    """Images are written atomically, so existing means done; a video is done when it holds as
    many frames as its source (an interrupted conversion leaves a shorter, playable file)."""
    if not out.is_file():
        return False
    if src.suffix.lower() in VIDEO_EXTENSIONS:
        return video_frame_count(out) >= video_frame_count(src) > 0
    return True


def convert_video(src: Path, out: Path, backend: Backend, opts: PipelineOptions, position: int = 1,
                  settings: EncodeSettings | None = None, job: tuple[object, ...] = (),
                  overwrite: bool = False) -> FileResult:  # fmt: skip
    """One video; a partial conversion of the same job left by a crash is resumed (see av_video)."""
    try:
        source = open_source(str(src))
    except SourceError as e:
        return failure(src, without_name(e))
    try:
        earlier = out.is_file() and not overwrite  # unfinished (finished ones were skipped)
        sink = open_output(str(out), source.fps, output_size(source.size, opts), settings, source, job, overwrite)
        if earlier and not sink.resumable:
            log.warning("%s: converted again from its start, replacing the unfinished output %s (OpenCV's writer "
                        "cannot continue it)", src.name, out)  # fmt: skip
        bar = progress_bar(total=source.frame_count or None, initial=sink.resumed, desc=src.name, unit="frame",
                           position=position, leave=False)  # fmt: skip
        left = None if source.finished else after_resume(opts, sink.resumed)
        stats = Pipeline(source, backend, sink, left, on_frame=lambda _: bar.update(1)).run() if left else PipelineStats()
        if not left:
            sink.close()
        bar.close()
    except OutputExists:  # finished outputs were skipped before: this is another conversion's unfinished one
        return failure(src, "its output holds another conversion's unfinished work (another model, other settings or "
                            "encoder): kept; --overwrite converts it again", out)  # fmt: skip
    except SinkError as e:
        return failure(src, without_name(e), write_failed=isinstance(e, WriteFailed))
    finally:
        source.close()
    if not left and sink.resumed and earlier:  # it held the whole conversion (an estimated frame count said not)
        return FileResult(src, out, SKIPPED_EXISTS, sink.resumed)
    frames = sink.resumed + stats.frames_out
    if stats.error:
        return failure(src, stats.error, out if out.exists() else None, frames, stats.fps, stats.write_failed)
    if stats.interrupted:
        return FileResult(src, out, "interrupted", frames, stats.fps)
    done = f"done (resumed after {sink.resumed})" if sink.resumed else "done"
    if source.frames_indexed and source.frame_count > frames and not opts.max_frames:  # the reader warned too
        done += f": {frames} of {source.frame_count} frames decode (truncated or corrupt)"
    return FileResult(src, out, done, frames, stats.fps, stats.flicker)


def convert_image(src: Path, out: Path, backend: Backend, opts: PipelineOptions | None = None,
                  note_upscale: bool = False, job: str = "", said: set[str] | None = None) -> FileResult:  # fmt: skip
    """One image, out at its own size (inference at ``opts.size`` when given, scaled back; ``note_upscale``: a
    warning when that is an upscale, for one image: a batch's would be one per file; ``job``: ``image_job``'s key,
    kept in the PNG; ``said``: hints a run gave already, a large image's once per run). A file that cannot be used
    gives a failed result; a failed write raises OSError, a broken model its BackendError."""
    try:
        img, alpha = read_image_and_alpha(src)
    except ImageReadError as e:
        return failure(src, without_name(e))
    size = (int(img.shape[0]), int(img.shape[1]))
    hw = inference_size(size, opts or PipelineOptions())
    small = too_small(size) or too_small(hw)  # the source too: --size would blow a 1x1000 strip up to 256x256000
    if small:
        return failure(src, small)
    upscaled = upscale_note(size, opts) if note_upscale and opts else None
    if upscaled:
        log.warning("%s: %s", src.name, upscaled)
    large = large_note(size, opts or PipelineOptions())
    if large and said is not None and "large" not in said:
        said.add("large")
        log.warning("%s: %s", src.name, large)
    t = time.perf_counter()
    frame = img if hw == size else cv2().resize(img, (hw[1], hw[0]), interpolation=cv2().INTER_AREA)
    result = translate_frames(backend, [frame])[0]
    if hw != size:
        result = cv2().resize(result, (size[1], size[0]), interpolation=cv2().INTER_LINEAR)
    side_by_side = opts is not None and opts.side_by_side
    if side_by_side:  # input | output, as a video's frames are
        result = np.hstack([img, result])
    if alpha is not None and out.suffix.lower() in ALPHA_EXTENSIONS:  # a logo's transparency stays transparent
        result = np.dstack([result, np.hstack([alpha, alpha]) if side_by_side else alpha])
    write_image(out, result, job, source_digest(src) if job else "")
    return FileResult(src, out, "done", 1, 1.0 / max(time.perf_counter() - t, 1e-9))


def folder_files(in_dir: Path, out_dir: Path) -> list[Path]:
    """Every file in ``in_dir``, recursively (see input_files)."""
    return input_files(in_dir.rglob("*"), in_dir, out_dir)


def glob_files(pattern: str, out_dir: Path) -> list[Path]:
    """The files a glob matches (``**`` descends into folders; see input_files); SourceError when none does."""
    files = input_files((Path(p) for p in glob.glob(pattern, recursive=True)), glob_root(pattern), out_dir)
    if not files:
        raise SourceError(f"{pattern}: no file matches")
    return files


def input_files(candidates: Iterable[Path], root: Path, out_dir: Path) -> list[Path]:
    """The files to consider, sorted, leaving out hidden ones (our partial videos among them) and those in an
    output folder nested in the input folder ``root``, which may not be the output folder itself."""
    if root.resolve() == out_dir.resolve():
        raise OutputPathError(f"{out_dir}: the output folder is the input folder; outputs would mix with (and could "
                              "replace) the inputs: choose another folder")  # fmt: skip
    nested = relative_to(out_dir.resolve(), root.resolve()) is not None
    files = sorted(p for p in candidates if p.is_file() and not p.name.startswith(".")
                   and not (nested and relative_to(p.resolve(), out_dir.resolve()) is not None))  # fmt: skip
    return without_earlier_outputs(files, root)


def in_shard(rel: Path, shard: tuple[int, int]) -> bool:
    """Whether the file at ``rel`` (relative to the input folder) belongs to shard K of N: a stable hash of
    the path, so that N independent runs (any scheduler, no coordinator) split a folder disjointly."""
    k, n = shard
    return int(hashlib.sha256(rel.as_posix().encode()).hexdigest(), 16) % n == k


def convert_folder(in_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], backend: Backend,
                   opts: PipelineOptions, overwrite: bool = False, settings: EncodeSettings | None = None,
                   job: tuple[object, ...] = (), shard: tuple[int, int] | None = None,
                   image_job: str = "") -> list[FileResult]:  # fmt: skip
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    return convert_files(folder_files(in_dir, out_dir), in_dir, out_dir, backend, opts, overwrite, settings, job,
                         shard, image_job)  # fmt: skip


def convert_files(files: list[Path], root: Path, out_dir: Path, backend: Backend, opts: PipelineOptions,
                  overwrite: bool = False, settings: EncodeSettings | None = None, job: tuple[object, ...] = (),
                  shard: tuple[int, int] | None = None, image_job: str = "") -> list[FileResult]:  # fmt: skip
    """Each of ``files`` (found below ``root``) to ``out_dir``, keeping its path below ``root``. ``job``: what
    a video's resume key holds; ``image_job``: the key each image output keeps (``image_job()``), checked against
    those that exist before anything is converted."""
    media = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS]
    outputs = dict(zip(media, unique_outputs(media, [output_path(p, out_dir, [root]) for p in media])))
    check_outputs(files, outputs.values())  # before anything is opened
    if shard is not None:  # after naming the outputs, so that every shard names them alike
        files = [p for p in files if in_shard(relative_to(p, root) or p, shard)]
    if not overwrite:
        check_same_job([(p, outputs[p]) for p in files if p in outputs], out_dir, image_job)
    video_key = video_key_for(opts, settings, job)
    results: list[FileResult] = []
    said: set[str] = set()  # hints given once per batch
    markable = markable_output_folder(out_dir)
    for i, src in enumerate(progress_bar(files, desc="files", unit="file", position=0)):
        ext = src.suffix.lower()
        out = outputs.get(src)
        row = untried(src, out, overwrite)
        if row.status == SKIPPED_EXISTS and out is not None and ext in VIDEO_EXTENSIONS and other_conversion(
                src, out, video_key):  # fmt: skip
            row.status = SKIPPED_OTHER
        if row.status != NOT_STARTED:  # skipped: not media, or its output exists
            results.append(row)
            continue
        assert out is not None  # untried() skips a file without one
        try:
            if ext in VIDEO_EXTENSIONS:
                res = convert_video(src, out, backend, opts, settings=settings, job=job, overwrite=overwrite)
            else:
                res = convert_image(src, out, backend, opts, job=image_job, said=said)
        except KeyboardInterrupt:
            res = FileResult(src, out if out.exists() else None, "interrupted")
        except OSError as e:  # an image's write
            res = failure(src, f"cannot write ({first_line(e)})", write_failed=True)
        if res.write_failed:  # the next file would fail alike: the rest are listed, not tried
            results.append(res)
            rest = [untried(p, outputs.get(p), overwrite) for p in files[i + 1 :]]
            results += [replace(r, status=NOT_TRIED) if r.status == NOT_STARTED else r for r in rest]
            break
        results.append(res)
        if markable and res.output is not None and res.output.exists():
            mark_output_folder(out_dir)
        if res.status == "interrupted":
            results += [untried(p, outputs.get(p), overwrite) for p in files[i + 1 :]]
            break
    return results


def untried(src: Path, out: Path | None, overwrite: bool) -> FileResult:
    """The row of a file before it is tried (or a Ctrl-C left it untried): skipped, or not started."""
    if out is None:
        return FileResult(src, None, "skipped (not an image or video)")
    if not overwrite and already_done(src, out):
        return FileResult(src, out, SKIPPED_EXISTS)
    return FileResult(src, out, NOT_STARTED)


def summary_table(results: list[FileResult], root: Path) -> str:
    flicker = any(r.flicker is not None for r in results)  # --flicker: a column with each video's warping error
    rows: list[tuple[str, ...]] = [("file", "frames", "fps", *(["flicker"] if flicker else []), "status")]
    for r in results:
        name = str(relative_to(r.path, root) or r.path)
        measured = [f"{r.flicker:.2f}" if r.flicker is not None else "-"] if flicker else []
        rows.append((name, str(r.frames), f"{r.fps:.1f}" if r.fps else "-", *measured, r.shown))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
