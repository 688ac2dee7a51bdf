"""Progress reporting and cancellation, as callables the host plugs in.

The core never touches a host's state object: A1111's layer passes a sink that
advances ``shared.state`` and a stop token that reads its interrupt/skip flags;
the CLI passes a text bar; tests pass fakes.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO, runtime_checkable

from .errors import Interrupted


@runtime_checkable
class ProgressSink(Protocol):
    """Called with the units done so far, the total (``None`` when unknown) and a short text."""

    def __call__(self, done: int, total: int | None, text: str = "") -> None: ...


@runtime_checkable
class StopToken(Protocol):
    """Answers whether the user asked to stop the job (interrupt) or the current item (skip)."""

    def stop_requested(self) -> bool: ...

    def skip_requested(self) -> bool: ...


def null_progress(done: int, total: int | None, text: str = "") -> None:
    """A sink that ignores everything."""


class NeverStop:
    """A stop token that never asks to stop."""

    def stop_requested(self) -> bool:
        return False

    def skip_requested(self) -> bool:
        return False


class StopFlag:
    """A thread-safe stop token a caller sets from elsewhere (signal handler, UI button, test)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._skip = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def skip(self) -> None:
        self._skip.set()

    def clear_skip(self) -> None:
        self._skip.clear()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def skip_requested(self) -> bool:
        return self._skip.is_set()


def check_stop(token: StopToken | None, where: str = "") -> None:
    """Raise :class:`Interrupted` when ``token`` asks to stop."""
    if token is not None and token.stop_requested():
        raise Interrupted(f"interrupted{' ' + where if where else ''}")


class TextBar:
    """A one-line progress bar on a terminal stream (the CLI's sink).

    Redraws at most ``max_rate`` times a second; writes a newline when ``done`` reaches ``total``.
    """

    def __init__(self, label: str = "", stream: TextIO | None = None, width: int = 30, max_rate: float = 10.0):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._min_gap = 1.0 / max_rate
        self._last = 0.0
        self._ended = False
        self._width_drawn = 0

    def __call__(self, done: int, total: int | None, text: str = "") -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self._last < self._min_gap:
            return
        self._last = now
        if total:
            filled = int(self.width * min(done, total) / total)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"{self.label} [{bar}] {done}/{total}"
        else:
            line = f"{self.label} {done}"
        if text:
            line += f" {text}"
        interactive = getattr(self.stream, "isatty", lambda: False)()
        if interactive:  # redraw in place, padding over a longer previous line
            self.stream.write("\r" + line.ljust(self._width_drawn))
            self._width_drawn = len(line)
        elif not final:
            return  # a log file gets the final line only
        else:
            self.stream.write(line)
        if final and not self._ended:
            self.stream.write("\n")
            self._ended = True
        self.stream.flush()
