"""Progress bars: tqdm on a terminal; whole plain lines in a log (a file or a pipe)."""

from __future__ import annotations

import io
import os
import time

import pytest
from tqdm import tqdm

from cyclegan_edge import progress
from cyclegan_edge.progress import LogLineBar, progress_bar


def test_a_log_gets_whole_lines_at_most_every_interval_and_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.2)
    log = io.StringIO()
    bar = progress_bar(total=30, desc="clip.mp4", unit="frame", file=log, dynamic_ncols=True)
    assert isinstance(bar, LogLineBar)
    start = time.monotonic()
    for i in range(30):
        time.sleep(0.02)
        bar.update(1)
        bar.set_postfix(loss=i)  # refreshes on every call: a log must not get a line for each
    bar.close()
    elapsed = time.monotonic() - start
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert text.endswith("\n") and all(line.startswith("clip.mp4: ") for line in lines)
    assert lines[0].startswith("clip.mp4:   0%|") and "0/30" in lines[0]
    assert "30/30" in lines[-1] and "loss=29" in lines[-1]
    assert 3 <= len(lines) <= elapsed / 0.2 + 3, lines  # first, one per interval, last
    assert len(set(lines)) == len(lines)


def test_a_log_keeps_the_last_state_of_a_bar_a_terminal_would_clear() -> None:
    """leave=False: a terminal erases the bar; a log cannot, and "0/5" alone would read as a hang."""
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="files", file=log, leave=False):
        pass
    first, last = log.getvalue().splitlines()
    assert first == "files:   0%|          | 0/5 [00:00<?, ?it/s]" and last.startswith("files: 100%|##########| 5/5 [")


def test_a_terminal_gets_tqdm_itself() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        bar = progress_bar(total=3, desc="x", file=terminal)
        assert type(bar) is tqdm
        for _ in range(3):
            bar.update(1)
        bar.close()
    drawn = b""
    while True:  # a loaded machine hands the pty's output over in pieces; EIO: all of it has been read
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    text = drawn.decode()
    assert "\rx:" in text and "3/3" in text  # redrawn in place (a log line would end in the pty's "\r\n")
