"""Image files: listing, decoding with clear errors (corrupt JPEG data included), atomic writing, and
output paths that neither collide nor replace an input."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclegan_edge.atomic import atomic_path, check_writable
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.frames import to_bgr

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})

log = logging.getLogger("cyclegan_edge")


# libjpeg's warnings for data it could not decode (it fills the rest with grey and carries on)
JPEG_CORRUPTION = ("Corrupt JPEG data", "Premature end of JPEG file")
_FD2_LOCK = threading.Lock()  # file descriptor 2 is process-wide: one capture at a time


class ImageReadError(ValueError):
    pass


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


@contextlib.contextmanager
def c_stderr_lines() -> Iterator[list[str]]:
    """What C libraries print to file descriptor 2 inside the block (libjpeg, FFmpeg): the yielded list is filled
    when the block ends. Python's own stderr is flushed first and is captured too."""
    lines: list[str] = []
    with _FD2_LOCK, tempfile.TemporaryFile() as said:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(said.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            said.seek(0)
            lines += said.read().decode(errors="replace").splitlines()


def decode_jpeg_watched(data: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
    """imdecode, and libjpeg's complaints about corrupt data: libjpeg only prints them (to the C stderr)
    and returns an image with the lost part grey, so fd 2 is captured around the call. Anything else
    printed meanwhile is passed on. The image is turned upright as its EXIF orientation says (a phone's portrait
    photo is stored sideways), as every viewer shows it; a JPEG has no alpha to keep."""
    decode = cv2().imdecode
    with c_stderr_lines() as lines:
        img = decode(data, cv2().IMREAD_COLOR)  # IMREAD_UNCHANGED leaves out the EXIF orientation
    corrupt = [ln for ln in lines if ln.startswith(JPEG_CORRUPTION)]
    other = [ln for ln in lines if ln not in corrupt]
    if other:
        print("\n".join(other), file=sys.stderr)
    return img, corrupt


ALPHA_EXTENSIONS = frozenset({".png", ".webp", ".tif", ".tiff"})  # outputs that keep a source's transparency


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode any 8-bit image file as BGR uint8 HxWx3; ImageReadError with one line otherwise
    (also for a JPEG whose data is partly corrupt: libjpeg would return it partly grey)."""
    return read_image_and_alpha(path)[0]


def read_image_and_alpha(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """read_image, and the image's alpha channel (HxW uint8) when it has one."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"{p}: cannot read ({e.strerror})") from None
    corrupt: list[str] = []
    if data[:3].tobytes() == b"\xff\xd8\xff":
        img, corrupt = decode_jpeg_watched(data)
    else:
        img = cv2().imdecode(data, cv2().IMREAD_UNCHANGED) if data.size else None
    if corrupt:
        reason = corrupt[0].replace("Corrupt JPEG data: ", "")
        raise ImageReadError(f"{p}: corrupt JPEG data, it would decode partly grey ({reason})")
    if img is None:
        raise ImageReadError(f"{p}: not a decodable image")
    if img.dtype == np.uint16:  # 16-bit PNG/TIFF
        img = (img >> 8).astype(np.uint8)
    try:
        alpha = np.ascontiguousarray(img[:, :, 3]) if img.ndim == 3 and img.shape[2] == 4 else None
        return to_bgr(img), alpha
    except ValueError as e:
        raise ImageReadError(f"{p}: {e}") from None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JOB_KEYWORD = "cyclegan-edge job"  # the PNG text chunk naming what made a translation (model, size)
SOURCE_KEYWORD = "cyclegan-edge source"  # and the one naming what it translated (the source file's SHA-256)


def png_with_text(png: bytes, keyword: str, text: str) -> bytes:
    """``png`` with a tEXt chunk (Latin-1 ``keyword`` and ``text``) right after its header chunk, where
    ``png_text`` finds it without reading the image data."""
    data = keyword.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    end_of_header = len(PNG_SIGNATURE) + 8 + 13 + 4  # length, type, IHDR's 13 bytes, CRC
    return png[:end_of_header] + chunk + png[end_of_header:]


def png_text(path: str | os.PathLike[str], keyword: str) -> str | None:
    """The tEXt chunk ``keyword`` among a PNG file's chunks before its image data; None when it has none, or is
    no PNG."""
    want = keyword.encode("latin-1")
    try:
        with open(path, "rb") as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                return None
            while len(head := f.read(8)) == 8:
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return None
                body = f.read(length)
                f.seek(4, os.SEEK_CUR)  # CRC
                name, _, text = body.partition(b"\0")
                if kind == b"tEXt" and name == want:
                    return text.decode("latin-1")
    except OSError:
        return None
    return None


def write_image(path: str | os.PathLike[str], image: np.ndarray, job: str = "", source: str = "") -> Path:
    """``image`` to ``path`` (the format its extension names) atomically; ``job``: what made it, ``source``: what
    from, kept in a PNG's JOB_KEYWORD and SOURCE_KEYWORD text chunks (``png_text`` reads them) so that a rerun
    tells its own outputs from another job's."""
    p = Path(path)
    ok, buf = cv2().imencode(p.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{p}: OpenCV cannot encode this extension")
    data = buf.tobytes()
    if data.startswith(PNG_SIGNATURE):
        for keyword, text in ((SOURCE_KEYWORD, source), (JOB_KEYWORD, job)):
            data = png_with_text(data, keyword, text) if text else data
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(data)
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(p)) from None
    return p


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


def resize_area(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``image`` at ``hw`` (H, W), area interpolation (no aliasing when shrinking); itself when already that size."""
    if image.shape[:2] == tuple(hw):
        return image
    return cv2().resize(image, (hw[1], hw[0]), interpolation=cv2().INTER_AREA)


def fit_frame(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A video frame at the stream's size ``hw`` (H, W): one whose size changed mid-stream is resized (linear);
    itself when already that size."""
    if frame.shape[:2] == tuple(hw):
        return frame
    return cv2().resize(frame, (hw[1], hw[0]))


def resized(images: Sequence[np.ndarray], hw: tuple[int, int]) -> list[np.ndarray]:
    return [resize_area(i, hw) for i in images]


MIN_TILE_SIDE = 128  # px: smaller training crops are shown enlarged (whole pixels), with labels that can be read


def labeled_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]]) -> np.ndarray:
    """Rows of BGR images, each shown at the first image's size (enlarged a whole number of times, pixels kept
    sharp, when under MIN_TILE_SIDE), each row under a dark strip naming its columns (a sample grid a reader can
    tell apart without the documentation)."""
    c = cv2()
    h, w = rows[0][0].shape[:2]
    k = -(-MIN_TILE_SIDE // min(h, w))  # ceiling: 64 px crops show at 2x, 32 px at 4x
    h, w = h * k, w * k

    def tile(img: np.ndarray) -> np.ndarray:  # straight to the tile size: nearest when enlarging (sharp pixels)
        if img.shape[:2] == (h, w):
            return img
        enlarge = img.shape[0] < h or img.shape[1] < w
        return np.asarray(c.resize(img, (w, h), interpolation=c.INTER_NEAREST if enlarge else c.INTER_AREA))
    font, scale = c.FONT_HERSHEY_SIMPLEX, min(0.5, max(0.3, w / 512))
    (_, text_h), base = c.getTextSize("Ag", font, scale, 1)
    strip_h = text_h + base + 6
    parts = []
    for row, names in zip(rows, labels):
        strip = np.full((strip_h, w * len(row), 3), 40, np.uint8)
        for i, name in enumerate(names):
            c.putText(strip, name, (i * w + 4, strip_h - base - 3), font, scale, (255, 255, 255), 1, c.LINE_AA)
        parts += [strip, np.hstack([tile(img) for img in row])]
    return np.vstack(parts)


MIN_USABLE_SIDE = 16  # px: smaller, an image scaled to a model's size is a blur, not a photo to learn or judge from


def decoded_images(files: Iterable[Path], folder: str | os.PathLike[str], limit: int = 0,
                   min_side: int = MIN_USABLE_SIDE) -> Iterator[tuple[Path, np.ndarray]]:  # fmt: skip
    """Each of ``files`` that decodes and has ``min_side`` px a side, with its image, until ``limit`` of them (0:
    all). Each other one is skipped with a warning naming it, and one warning then counts them (``folder``: where
    they are)."""
    used = 0
    skipped = {"not decodable": 0, "too small": 0}
    early = False  # stopped at ``limit``: the count is of the files read, not of the folder's
    for p in files:
        if limit and used == limit:
            early = True
            break
        try:
            image = read_image(p)
        except ImageReadError as e:
            log.warning("skipped: %s", e)
            skipped["not decodable"] += 1
            continue
        h, w = image.shape[:2]
        if min(h, w) < min_side:
            log.warning("skipped: %s: %dx%d px, too small to use (under %d px a side)", p, w, h, min_side)
            skipped["too small"] += 1
            continue
        used += 1
        yield p, image
    n = sum(skipped.values())
    if n:
        why = [f"{k}" if v == n else f"{v} {k}" for k, v in skipped.items() if v]
        log.warning("%s: %d of %s%d image files skipped (%s)", folder, n, "the first " if early else "", used + n,
                    ", ".join(why))  # fmt: skip


def load_test_images(folder: str | os.PathLike[str], count: int) -> list[np.ndarray]:
    """The first ``count`` decodable images of ``folder`` (sorted; see decoded_images)."""
    files = list_files([folder])
    if not files:
        raise ValueError(f"{folder}: no test images")
    images = [image for _, image in decoded_images(files, folder, count)]
    if not images:
        raise ValueError(f"{folder}: none of its {len(files)} image files is readable")
    return images
