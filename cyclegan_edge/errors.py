"""One error path for every command: ``error: <one line>`` on stderr and an exit status.

    0    done
    1    the work could not be done (bad input, a model that cannot run, a failed write)
    2    the command line is wrong (usage)
    130  interrupted (Ctrl-C)
    143  stopped by SIGTERM (`timeout`, `docker stop`, systemd, Slurm), handled as Ctrl-C is

Commands raise; ``run_cli`` turns what they raise into that one line. Set CYCLEGAN_EDGE_TRACEBACK=1 to
get the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

TRACEBACK_ENV = "CYCLEGAN_EDGE_TRACEBACK"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


class UsageError(ValueError):
    """A wrong command line (exit 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2 through run_cli) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        extra = message.split(": ", 1)[1].split() if message.startswith("unrecognized arguments: ") else []
        # `runtime photos/*.jpg out/` unquoted: files, then the output (which may not exist yet)
        if len(extra) >= 2 and all(os.path.exists(a) for a in extra[:-1]):
            raise UsageError(f"unrecognized arguments: {extra[0]} ... {extra[-1]} ({len(extra)} of them): a pattern "
                             "the shell expanded? Quote it ('photos/*.jpg') for the command to expand, or give the "
                             f"folder (see {self.prog} --help)")  # fmt: skip
        raise UsageError(f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, unless None, False or empty (nothing given: its help says what then)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == "":
            return action.help
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """HelpFormatter, with the description's lines (a module docstring's usage) kept as written."""


def float_arg(low: float, high: float, above_low: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a number in [low, high] (``above_low``: (low, high]), refused up front with the range."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if (low < value if above_low else low <= value) and value <= high:  # nan fails both
            return value
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use {'more than ' if above_low else ''}{low:g} "
                                         f"{'up ' if above_low else ''}to {high:g}")  # fmt: skip

    return parse


def int_arg(low: int, high: int, also: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an int in [low, high] (or ``also``), refused up front with the allowed range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if low <= value <= high or value == also:
            return value
        allowed = f"{low}..{high}" + (f" (or {also})" if also is not None else "")
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use {allowed}")

    return parse


def first_line(exc: BaseException, limit: int = 500, path: bool = True) -> str:
    """The first line of an exception's message; for an OSError ``path: reason`` (``reason`` alone when
    ``path`` is false: the caller names the file already)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename is not None and path else exc.strerror
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# the extra that brings an optional package (pyproject.toml)
EXTRA_FOR = {"torch": "train", "onnx": "engine", "onnxscript": "export", "onnxruntime": "runtime",
             "matplotlib": "bench", "psutil": "bench", "tensorrt": "trt", "cv2": "opencv"}


# torch's CPU allocator ("can't allocate memory"), CUDA's ("CUDA out of memory"), OpenCV's ("Insufficient memory"),
# ONNX Runtime's ("Failed to allocate memory for requested buffer"), OpenVINO's and others'
OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory|not enough memory|insufficient memory|"
                           r"failed to allocate memory", re.IGNORECASE)  # fmt: skip


def broken_package(exc: BaseException) -> str | None:
    """The optional package that is installed but fails to import (a part of it or a dependency missing, its native
    library cut short or built for another machine): the module the ImportError names, else the installed package
    whose file failed to load or raised it."""
    if not isinstance(exc, ImportError):
        return None
    named = (exc.name or "").split(".")[0]
    if named in EXTRA_FOR:
        return named
    files = [exc.path or "", *(frame.filename for frame in reversed(traceback.extract_tb(exc.__traceback__)))]
    return next((p for p in map(installed_package, files) if p in EXTRA_FOR), None)


def installed_package(file: str) -> str | None:
    """The top-level package an installed file belongs to (the folder after site-packages), or None."""
    parts = Path(file).parts
    at = [i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")]
    return parts[at[-1] + 1].removesuffix(".py") if at and at[-1] + 1 < len(parts) else None


def reinstall_hint(module: str) -> str:
    """How to reinstall a broken package (pip's name for it; OpenCV's has several, and JetPack's is apt's; torch's
    plain pip name would fetch another build)."""
    if module == "cv2":
        return "reinstall the OpenCV you use (JetPack's python3-opencv, or pip's opencv-python(-headless))"
    if module == "torch":
        return "reinstall torch as it was installed (the same CPU or CUDA build)"
    return f"reinstall it: pip install --force-reinstall --no-deps {module}"


def describe(exc: BaseException, hint: bool = True) -> str:
    """The line to show: ours, OSError and ValueError speak for themselves, a missing optional package names
    its extra; anything else is unexpected (a library's error or a bug), so it keeps its type name."""
    missing = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
    if missing in EXTRA_FOR:
        return f"{missing} is not installed here: pip install 'cyclegan-edge[{EXTRA_FOR[missing]}]'"
    broken = broken_package(exc)
    needs = missing.split(".")[0]
    if broken and needs and needs != broken:  # a dependency it imports is not there: reinstalling it would not help
        return f"{broken} needs {needs}, which is not installed here: pip install {needs}"
    if broken:
        return f"{broken} is installed but broken ({first_line(exc)}): {reinstall_hint(broken)}"
    allocation = not isinstance(exc, (OSError, ValueError)) and bool(OUT_OF_MEMORY.search(str(exc)))
    if isinstance(exc, MemoryError) or allocation:
        counted = re.search(r"allocate (\d+) bytes|buffer of size (\d+)", str(exc))
        said = re.search(r"allocate ([0-9.]+ [KMGTP]?i?B)", str(exc))  # numpy's
        nbytes = int(counted.group(1) or counted.group(2)) if counted else 0
        size = f" ({nbytes / 2**30:.1f} GiB" if counted else f" ({said.group(1)}" if said else ""
        size += " asked at once)" if size else ""
        return f"out of memory{size}: smaller images (--size, --crop-size) or a smaller batch need less"
    if isinstance(exc, (OSError, ValueError)) or type(exc).__module__.startswith("cyclegan_edge"):
        return first_line(exc)
    line = f"{type(exc).__name__}: {first_line(exc)}"
    return line + (f" (unexpected; {TRACEBACK_ENV}=1 shows the traceback)" if hint else "")


@contextlib.contextmanager
def holding_ctrl_c(mask: bool = True) -> Iterator[list[int]]:
    """Ctrl-C held back inside, and delivered after: for steps that must not stop halfway, and for loading torch,
    whose extension swallows a SIGINT that arrives meanwhile (the command then ran on as if none had come). Two
    layers: the mask keeps a new SIGINT pending in the OS, and the handler records one that Python had already
    caught but not yet acted on (its handler runs whenever the interpreter next checks). ``mask=False``: the
    handler only, and what it recorded is yielded, so that work inside can stop early (a TensorRT build)."""
    caught: list[int] = []
    # handlers are the main thread's only; an ignored SIGINT (a job started with `&`) stays ignored, never recorded
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN
    previous = signal.signal(signal.SIGINT, lambda n, _: caught.append(n)) if ours else None
    block = getattr(signal, "pthread_sigmask", None) if mask else None  # POSIX only
    old_mask = None
    try:
        old_mask = block(signal.SIG_BLOCK, {signal.SIGINT}) if block else None
        yield caught
    finally:
        if block and old_mask is not None:
            block(signal.SIG_SETMASK, old_mask)  # a pending SIGINT arrives now, and is caught while the handler is ours
        if ours:
            signal.signal(signal.SIGINT, previous)
            if caught:
                signal.raise_signal(signal.SIGINT)  # as the previous handler would have had it: raise or exit


def call_interruptibly(fn: Callable[[], Any]) -> Any:
    """fn() in a thread, so that Ctrl-C raises in the main thread while fn blocks in C code (which would hold the
    KeyboardInterrupt until it returned). The abandoned thread ends with the process."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # raised again in the caller's thread
            errors.append(e)

    worker = threading.Thread(target=run, name="open", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if errors:
        raise errors[0]
    return result[0]


# Libraries whose native extension a Ctrl-C during import can leave half registered, failing ever after (OpenVINO:
# 'type "Extension" is already registered!'): the run then went on without it, the Ctrl-C lost.
HELD_IMPORTS = frozenset({"openvino", "onnxruntime", "torch", "tensorrt", "tensorrt_rtx"})


def import_failure(name: str) -> ImportError | OSError | None:
    """None when module ``name`` imports here, else what its import raised (``describe`` says it: not installed,
    installed but broken, or a dependency of it missing). Ctrl-C is held back meanwhile for HELD_IMPORTS (not for
    the rest: matplotlib's first import can take 10 s)."""
    try:
        with holding_ctrl_c() if name.split(".")[0] in HELD_IMPORTS else contextlib.nullcontext():
            importlib.import_module(name)
    except (ImportError, OSError) as e:
        return e
    return None


def not_installed(failure: BaseException | None, name: str) -> bool:
    """Whether ``failure`` (import_failure's) says that module ``name`` itself is not installed."""
    return isinstance(failure, ModuleNotFoundError) and bool(failure.name) and (
        name == failure.name or name.startswith(f"{failure.name}."))  # fmt: skip


def importable(name: str) -> bool:
    """Whether module ``name`` imports here (see import_failure)."""
    return import_failure(name) is None


def import_holding_ctrl_c(names: tuple[str, ...]) -> None:
    """Import these modules with Ctrl-C held back until they are loaded (see holding_ctrl_c)."""
    with holding_ctrl_c():
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # the command names the missing extra when it needs the module


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[list[int]]:
    """SIGTERM handled as Ctrl-C is (it is raised as SIGINT, so whatever handles Ctrl-C at that moment acts): the
    signal ``timeout``, ``docker stop``, systemd and Slurm send would otherwise end the process at once, leaving a
    video in its hidden partial file. Yields the SIGTERMs received. A SIGTERM handler set by someone else is kept;
    with SIGINT ignored (a job started with ``&`` in a script) SIGTERM raises KeyboardInterrupt itself, as Python's
    own SIGINT handler would."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield received
        return

    def on_sigterm(signum: int, _frame: Any) -> None:
        received.append(signum)
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # raised as SIGINT, it would be lost
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's ``main(argv)`` and return its exit status, printing one line for what it raised. A
    command imports its heavy modules with import_holding_ctrl_c after parsing its flags (--help needs none).
    SIGTERM stops it as Ctrl-C does (``sigterm_as_ctrl_c``), with exit status 143."""
    with sigterm_as_ctrl_c() as terminated:
        try:
            status = main(argv)
        except KeyboardInterrupt:
            print("error: terminated (SIGTERM)" if terminated else "error: interrupted", file=sys.stderr)
            status = EXIT_INTERRUPTED
        except Exception as e:
            if os.environ.get(TRACEBACK_ENV) == "1":
                raise
            print(f"error: {describe(e)}", file=sys.stderr)
            status = EXIT_USAGE if isinstance(e, UsageError) else EXIT_FAILED
    return EXIT_TERMINATED if terminated and status == EXIT_INTERRUPTED else status
