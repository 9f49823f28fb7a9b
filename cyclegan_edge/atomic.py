"""Atomic file writes: a reader (or a crash) never sees a half-written file; one writer per output at a time."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename. An OSError about
    the temporary file or about no file (a read-only folder, a full disk) names ``path``: the user never typed
    the other."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = temporary_affixes(final)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=final.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(final)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, final)
    except OSError as e:
        if e.filename is not None and str(e.filename) != tmp:  # about another file (an input, say)
            raise
        raise OSError(e.errno, e.strerror or str(e), str(final)) from None  # the temporary, or no name (disk full)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def temporary_affixes(final: Path) -> tuple[str, str]:
    """How ``atomic_path`` names its temporary beside ``final``: ``.NAME.<random>.tmp.EXT``."""
    return f".{final.name}.", ".tmp" + final.suffix


def leftover_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Temporaries of ``atomic_path(path)`` that a killed process left (only safe to remove by the output's owner)."""
    final = Path(path)
    prefix, suffix = temporary_affixes(final)
    return sorted(final.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"))


def check_writable(path: str | os.PathLike[str]) -> None:
    """OSError naming ``path`` when it could not be written, for a check before slow work whose result goes there:
    its nearest existing folder cannot take a new file (missing folders would be made there), or a file stands
    where a folder must be. A temporary file is tried there and removed: nothing is left, no folder is made."""
    final = Path(path)
    probe = final.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():  # mkdir would say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".probe", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(final)) from None


def unwritable_folder(folder: str | os.PathLike[str], named: bool = False) -> str | None:
    """Why files cannot go into ``folder`` (made where missing), for a check before slow work: "a file, not a
    folder" (``named``: "FOLDER is a file, not a folder"), "PARENT is a file, not a folder" or "cannot write
    (reason)"; None when they can."""
    try:
        check_writable(Path(folder) / "probe")
    except OSError as e:
        blocking = next((p for p in (Path(folder), *Path(folder).parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():  # mkdir would say "File exists"
            named = named or blocking != Path(folder)
            return f"{blocking} is a file, not a folder" if named else "a file, not a folder"
        return f"cannot write ({e.strerror or e})"
    return None


class OutputBusy(OSError):
    """Another process is writing this output now."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of output ``path``: ``.NAME.lock`` beside it."""
    final = Path(path)
    return final.with_name(f".{final.name}.lock")


def lock_output(path: str | os.PathLike[str], busy: str = "is writing it now; wait for it to end, or give another "
                "output", shown: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """Take the exclusive lock on ``path`` (``.NAME.lock`` beside it; the folder is made) and return its file
    descriptor for ``unlock_output``; OutputBusy, naming ``shown`` (else ``path``), when another process holds it.
    A second process on one output
    would resume, or delete, the first one's unfinished file. The kernel drops the lock when its process ends,
    kill -9 included, and the next writer reuses the file it left. -1 where there is no flock (Windows)."""
    try:
        import fcntl
    except ImportError:
        return -1
    final, lock = Path(path), lock_path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise OutputBusy(f"{shown or final}: another process{pid} {busy}") from None
        except OSError:  # a file system without flock (Lustre without -o flock, some NFS): write unlocked, as before
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            return -1
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # its holder ended and removed it between our open and our lock: lock the file there now
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock_output(path: str | os.PathLike[str], fd: int) -> None:
    """Remove ``path``'s lock file and release the lock (``fd`` from ``lock_output``)."""
    if fd < 0:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path(path))
    os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it: os.umask can only read it by setting
    another, which the files other threads create meanwhile get (the strictest one, then: 0o077, never 0)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
