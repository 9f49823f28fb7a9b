"""Image files read and written: decoding with clear errors (corrupt JPEG data included, EXIF orientation
applied), atomic writing, and the PNG text chunks that say what made an output."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cyclegan_edge.atomic import atomic_path
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import list_files
from cyclegan_edge.imaging.frames import to_bgr

log = logging.getLogger("cyclegan_edge")


# libjpeg's warnings for data it could not decode (it fills the rest with grey and carries on)
JPEG_CORRUPTION = ("Corrupt JPEG data", "Premature end of JPEG file")
_FD2_LOCK = threading.Lock()  # file descriptor 2 is process-wide: one capture at a time


class ImageReadError(ValueError):
    pass


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
