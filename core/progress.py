"""Progress of the long loops: a bar on a terminal, a plain line now and then in a log file.

tqdm draws only on a terminal (on a file or a CI log it stays silent), so a long run written to a
log said nothing for half an hour. :func:`progress_bar` returns tqdm's bar where it can draw, and
otherwise a :class:`LogProgress` that writes ``desc: step i/N, rate, ETA m:ss, loss L`` to stderr
at most every ``MMDD_LOG_EVERY`` seconds (default 30) and once at the end of the loop.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator

from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as _notebook_tqdm
from tqdm.std import tqdm as _std_tqdm

LOG_EVERY_ENV = "MMDD_LOG_EVERY"
DEFAULT_LOG_EVERY = 30.0


def log_every() -> float:
    """Seconds between two progress lines off a terminal (``MMDD_LOG_EVERY``; 0 logs every step)."""
    raw = os.environ.get(LOG_EVERY_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_LOG_EVERY
    except ValueError:
        return DEFAULT_LOG_EVERY
    return value if value >= 0 else DEFAULT_LOG_EVERY


def _draws(stream) -> bool:
    """Whether tqdm can draw here: a terminal, or a notebook (tqdm.auto's widget)."""
    if _notebook_tqdm is not _std_tqdm:  # tqdm.auto chose the notebook widget
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
                 unit: str = "it", initial: int = 0, leave: bool = True, enabled: bool = True):
    """Iterate ``iterable`` with progress shown: tqdm on a terminal, periodic lines otherwise.

    ``enabled=False`` shows nothing. Either object supports ``set_postfix(loss=...)`` and ``close()``.
    """
    if not enabled:
        return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, leave=leave, disable=True)
    if _draws(sys.stderr):
        return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, leave=leave)
    return LogProgress(iterable, desc=desc, total=total, unit=unit, initial=initial)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LogProgress:
    """tqdm's interface as the loops use it, written as a plain line every ``every`` seconds."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
                 unit: str = "it", initial: int = 0, every: float | None = None, file=None):
        if total is None and iterable is not None:
            try:
                total = initial + len(iterable)  # as tqdm counts a resumed loop: initial + what is left
            except TypeError:
                total = None
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.initial = self.n = initial
        self.every = log_every() if every is None else every
        self.file = file
        self.postfix: dict[str, object] = {}
        self._start = self._last = time.monotonic()
        self._logged_n: int | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self.iterable)

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._log(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        self.postfix = {**dict(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        """Log the last state once (unless it was just logged)."""
        if not self._closed:
            self._closed = True
            if self._logged_n != self.n:
                self._log(time.monotonic())

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed, done = now - self._start, self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        what = "step" if self.unit == "it" else self.unit
        parts = [f"{what} {self.n}/{self.total}" if self.total is not None else f"{what} {self.n}"]
        if rate >= 1 or rate == 0:
            parts.append(f"{rate:.2f} {self.unit}/s" if rate < 100 else f"{rate:.0f} {self.unit}/s")
        else:
            parts.append(f"{1 / rate:.2f} s/{self.unit}")
        if self.total is not None and rate > 0:
            parts.append(f"ETA {_clock(max(self.total - self.n, 0) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return f"{self.desc}: {', '.join(parts)}" if self.desc else ", ".join(parts)

    def _log(self, now: float) -> None:
        print(self.line(now), file=self.file if self.file is not None else sys.stderr, flush=True)
        self._last, self._logged_n = now, self.n
