"""Progress bars that also read well in a log file.

On a terminal, a tqdm bar. When the bar's stream is not a terminal (``> log.txt``, ``nohup``, a pipe, CI), tqdm
would write every redraw into the file behind carriage returns and cursor moves: one endless line. There the bar
is a plain line instead, at most every ``LOG_EVERY_S`` seconds, plus the last state when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

LOG_EVERY_S = 30.0


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, or its log-line form when the stream (``file``, default stderr) is no terminal."""
    stream = kwargs.get("file") or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if kwargs.get("disable") or (isatty is not None and isatty()):
        return tqdm(iterable, **kwargs)
    return LogLineBar(iterable, **kwargs)


class _NoTerminal:
    """Where tqdm's terminal drawing (clearing, moving between lines) goes in a log: nowhere."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class LogLineBar(tqdm):
    """The bar as whole lines (ASCII, no control characters): the first state, then at most one line every
    ``LOG_EVERY_S`` seconds, and the last state at close (leave=False too), never the same line twice."""

    def __init__(self, iterable: Any = None, **kwargs: Any) -> None:
        self._log = kwargs.pop("file", None) or sys.stderr
        self._last_line, self._logged_at = "", -float("inf")
        kwargs.update(file=_NoTerminal(), ascii=True, mininterval=LOG_EVERY_S, maxinterval=LOG_EVERY_S)
        kwargs.pop("dynamic_ncols", None)
        super().__init__(iterable, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        closing = self.disable  # tqdm sets it before drawing the final state (or clearing a leave=False bar)
        if msg and not closing:  # e.g. tqdm's "... (more hidden) ..." for bars beyond the screen
            return True
        now = time.monotonic()
        if not closing and now - self._logged_at < LOG_EVERY_S:  # set_postfix/refresh ignore mininterval
            return True
        line = self.__str__().rstrip()  # also where tqdm would clear a leave=False bar: a log cannot erase a line
        if line and line != self._last_line:
            try:
                self._log.write(line + "\n")
                self._log.flush()
            except (OSError, ValueError):  # a closed or broken stream: progress is not worth failing the work
                return False
            self._last_line, self._logged_at = line, now
        return True
