"""Which files: listing inputs (images, videos, folders of them), and output paths that neither collide nor replace
an input, nor are read back as inputs later (the output-folder marker); a report's --output folder checked before
any work."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclegan_edge.atomic import check_writable

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


log = logging.getLogger("cyclegan_edge")


class OutputPathError(ValueError):
    """An output path that would replace an input."""


class DataError(ValueError):
    """Images to learn from, judge with or calibrate on that are not there: no such folder, no image files in it,
    none usable."""


def relative_to(path: Path, root: Path) -> Path | None:
    """``path`` below ``root``, or None (Path.is_relative_to needs Python 3.9; JetPack 5 has 3.8)."""
    try:
        return path.relative_to(root)
    except ValueError:
        return None


# Left in a folder that batch mode or translate writes to; a later listing of a folder above it leaves that folder out.
OUTPUT_MARKER = ".cyclegan-edge-outputs"


def mark_output_folder(out_dir: Path) -> None:
    """Say in ``out_dir`` that it holds translations (OUTPUT_MARKER): a later run over a folder above it would
    otherwise translate them again as inputs. Best effort: a folder that cannot be written says so at the first
    output."""
    marker = out_dir / OUTPUT_MARKER
    with contextlib.suppress(OSError):
        if not marker.exists():
            out_dir.mkdir(parents=True, exist_ok=True)
            marker.write_text("cyclegan-edge wrote translations here. A run over a folder above this one leaves this "
                              "folder out; delete this file to have them read as inputs.\n")  # fmt: skip


def markable_output_folder(out_dir: Path, max_entries: int = 20000) -> bool:
    """Whether a run may mark ``out_dir`` as holding outputs (asked before it writes any): a new or empty folder, or
    one marked before. A folder that already holds images or videos (the user's own, or this run's inputs) is not
    marked: a later run over a folder above it would leave those out. Folders marked by earlier runs and our own
    unfinished files (``.x.partial.mp4``, ``.x.png.*.tmp.png``) do not count; a tree of over ``max_entries``
    entries is not marked (not walked to the end)."""
    if not out_dir.is_dir() or (out_dir / OUTPUT_MARKER).is_file():
        return True
    media = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    seen = 0
    for folder, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not (Path(folder) / d / OUTPUT_MARKER).is_file()]
        seen += len(dirs) + len(names)
        if seen > max_entries:
            return False
        for n in names:
            ours = n.startswith(".") and (".partial." in n or ".tmp." in n)
            if Path(n).suffix.lower() in media and not ours:
                return False
    return True


def without_earlier_outputs(files: Iterable[Path], root: Path) -> list[Path]:
    """``files`` found below the folder ``root``, less those in a folder below it that holds OUTPUT_MARKER (one
    warning per such folder). ``root`` itself may be one: converting a run's outputs again is asked for by name."""
    marked: dict[Path, bool] = {}
    left_out: dict[Path, int] = {}
    kept = []
    for f in files:
        holder = None
        for parent in f.parents:
            if len(parent.parts) <= len(root.parts):
                break
            if parent not in marked:
                marked[parent] = (parent / OUTPUT_MARKER).is_file()
            if marked[parent]:
                holder = parent
        if holder is None:
            kept.append(f)
        else:
            left_out[holder] = left_out.get(holder, 0) + 1
    for folder, n in left_out.items():
        log.warning("%s: left out %d file%s there, the outputs of an earlier run (it holds %s; delete that file to "
                    "have them read as inputs)", folder, n, "" if n == 1 else "s", OUTPUT_MARKER)  # fmt: skip
    return kept


def list_files(paths: Iterable[str | os.PathLike[str]], extensions: frozenset[str] = IMAGE_EXTENSIONS,
               skip_outputs: bool = False) -> list[Path]:  # fmt: skip
    """Files with one of ``extensions`` among ``paths`` (files as given, folders recursively, sorted; with
    ``skip_outputs``, less the outputs of earlier runs in folders below them: ``without_earlier_outputs``). A file
    reached twice (named, and in a named folder) is listed once, as first reached."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            listed = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            found += without_earlier_outputs(listed, p) if skip_outputs else listed
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def spread(items: Sequence[Path], count: int) -> list[Path]:
    """At most ``count`` items spread evenly over the list, first and last included (0 = all)."""
    if not count or count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def folder_image_files(folder: str | os.PathLike[str], count: int = 0, what: str = "") -> list[Path]:
    """The image files under ``folder`` (recursively, sorted), at most ``count`` spread evenly (0 = all); DataError
    naming the folder, and ``what`` it should hold, when it is not a folder or holds none."""
    p = Path(folder)
    should = f"; it should hold {what}" if what else ""
    if not p.is_dir():
        raise DataError(f"{p}: {'a file, not a folder of images' if p.exists() else 'no such folder'}{should}")
    files = list_files([p])
    if not files:
        raise DataError(f"{p}: holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}){should}")
    return spread(files, count)


class OutputError(ValueError):
    """An --output folder a report cannot be written to (exit 1)."""


@dataclass(frozen=True)
class ReportFolder:
    """The --output folder a command writes its report ``files`` into (``what``: "TOOL writes FILES"; ``after``
    ends each message): checked before any work, and the same line when a write fails later."""

    files: tuple[str, ...]
    what: str
    after: str = ""

    def error(self, out: Path, e: OSError) -> OutputError:
        if out.exists() and not out.is_dir():
            return OutputError(f"--output {out}: a file, not a folder ({self.what} into a folder){self.after}")
        return OutputError(f"--output {out}: cannot write ({e.strerror or e}){self.after}")

    def check(self, out: Path, inputs: Iterable[Path]) -> None:
        """Refuse an --output the report could not be written to: a report file that would replace an input, a file
        where the folder goes, a folder in the way of a report file, a folder that cannot be made or written. The
        write's own first step is tried (a temporary file in the nearest existing folder, which also proves a
        missing folder can be made there) and undone, so nothing is left."""
        try:
            check_outputs([p for p in inputs if p.is_file()], [out / n for n in self.files])
        except OutputPathError as e:
            raise OutputError(f"--output {e}") from None
        if out.exists() and not out.is_dir():
            raise self.error(out, FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(out)))
        for name in self.files:
            if (out / name).is_dir():
                raise OutputError(f"--output {out}: a folder is in the way of {out / name}{self.after}")
        try:
            check_writable(out / self.files[0])
        except OSError as e:
            raise self.error(out, e) from None


def check_outputs(inputs: Iterable[Path], outputs: Iterable[Path]) -> None:
    """OutputPathError when an output would replace an input: the same file through any path (``..``,
    symlinks, hard links). Called before anything is opened or written."""
    by_id, by_path = {}, {}
    for p in inputs:
        st = os.stat(p)
        by_id[(st.st_dev, st.st_ino)], by_path[Path(p).resolve()] = p, p
    for out in outputs:
        try:
            st = os.stat(out)
            hit = by_id.get((st.st_dev, st.st_ino))
        except OSError:  # not there yet, perhaps below a folder still to be made: compare the resolved paths
            hit = by_path.get(Path(out).resolve())
        if hit is not None:
            raise OutputPathError(f"{out}: this output would replace the input {hit}; choose another output path")


def output_path(src: Path, out_dir: Path, roots: Sequence[Path] = (), root_named: bool = False) -> Path:
    """Where the translation of ``src`` goes in ``out_dir``, for ``translate`` and batch mode alike: its path
    below the first folder among ``roots`` that holds it (under that folder's own name when ``root_named``, so
    that several input folders stay apart), else its bare name; a video becomes ``.mp4``, an image ``.png``."""
    ext = ".mp4" if src.suffix.lower() in VIDEO_EXTENSIONS else ".png"
    for root in roots:
        below = relative_to(src, root) if root.is_dir() else None
        if below is not None:
            return out_dir / (Path(root.name) / below if root_named else below).with_suffix(ext)
    return out_dir / Path(src.name).with_suffix(ext)


def unique_outputs(sources: Sequence[Path], outputs: Sequence[Path]) -> list[Path]:
    """``outputs`` with no two alike: sources that map to one output keep their own name in it
    (``x.jpg`` and ``x.png`` -> ``x.jpg.png`` and ``x.png.png``), then a counter (``x.jpg-2.png``)."""
    counts: dict[Path, int] = {}
    for o in outputs:
        counts[o] = counts.get(o, 0) + 1
    named = [o.with_name(s.name + o.suffix) if counts[o] > 1 else o for s, o in zip(sources, outputs)]
    taken: set[Path] = set()
    result = []
    for o in named:
        n, candidate = 1, o
        while candidate in taken:
            n += 1
            candidate = o.with_name(f"{o.stem}-{n}{o.suffix}")
        taken.add(candidate)
        result.append(candidate)
    return result
