"""Progress that reads well on a terminal and in a log file: `progress()` replaces tqdm everywhere in llmrec.

On a terminal (stderr is a TTY) it is a tqdm bar. Elsewhere (`llmrec train ... > log 2>&1`, a pipe, a test's
captured output) a bar would write one endless line of carriage-return updates, so `progress()` returns a
`LineProgress` instead: plain lines on stderr, at most one every LLMREC_PROGRESS_SECONDS (default 30), e.g.

    epoch 1/3: 120/321 (37%) in 18s, 6.7 it/s, ETA 30s, loss=0.6512 samples_s=214
    epoch 1/3: 321/321 (100%) in 47s, 6.8 it/s, loss=0.6485 samples_s=220

Environment:
    LLMREC_PROGRESS=bar|log|off   force a tqdm bar, the plain lines, or nothing (default: bar on a TTY, else log)
    LLMREC_PROGRESS_SECONDS=N     seconds between two plain lines (a number > 0; default 30)

A bad value of either raises `llmrec.errors.ConfigError` (the CLI prints it as one line and exits 2).
`configure_library_bars()` turns the bars of `datasets` and `transformers` off by the same rule.
"""

from __future__ import annotations

import math
import os
import sys
import time

from llmrec.errors import ConfigError

MODES = ("bar", "log", "off")
DEFAULT_SECONDS = 30.0


def settings() -> tuple[str, float]:
    """(mode, seconds between lines) from LLMREC_PROGRESS / LLMREC_PROGRESS_SECONDS and whether stderr is a TTY.
    Raises ConfigError for a mode other than bar | log | off, or seconds that are not a number > 0."""
    mode = os.environ.get("LLMREC_PROGRESS", "").strip().lower()
    if mode and mode not in MODES:
        raise ConfigError(f"LLMREC_PROGRESS: expected one of {' | '.join(MODES)}, got {os.environ['LLMREC_PROGRESS']!r}")
    raw = os.environ.get("LLMREC_PROGRESS_SECONDS", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise ConfigError(f"LLMREC_PROGRESS_SECONDS: expected a number of seconds > 0, got {raw!r}")
    return mode or ("bar" if _stderr_is_tty() else "log"), seconds


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr (pythonw), or a closed one
        return False


def progress(iterable=None, *, total=None, desc: str = "", initial: int = 0, disable: bool = False,
             leave: bool = True, unit: str = "it"):
    """A tqdm bar (stderr is a TTY, or LLMREC_PROGRESS=bar) or a `LineProgress` (otherwise; silent under
    LLMREC_PROGRESS=off). Both iterate `iterable`, count items done, and offer `set_postfix(**values)`,
    `update(n)`, `close()` and `with`. `total` defaults to len(iterable) where it has one. Raises ConfigError
    for bad LLMREC_PROGRESS / LLMREC_PROGRESS_SECONDS values."""
    mode, seconds = settings()
    if mode == "bar":
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable, leave=leave, unit=unit)
    return LineProgress(iterable, total=total, desc=desc, initial=initial, disable=disable or mode == "off",
                        leave=leave, unit=unit, seconds=seconds)


class LineProgress:
    """Progress as plain lines on stderr (no carriage returns, no colours): one line at most every `seconds`
    while items are done (desc, done/total and percent, elapsed, rate, ETA when the total is known, postfix),
    and a final line when the loop ends or `close()` is called, unless the last line showed the same count:
    always for `leave=True`, for `leave=False` only after a line was printed (a short inner loop, e.g. a
    validation pass, stays silent). Nothing at all when `disable`. An item counts as done when the next one is
    asked for, or when the loop is left with it (a `break` after using it; tqdm would not count that one)."""

    def __init__(self, iterable=None, *, total=None, desc: str = "", initial: int = 0, disable: bool = False,
                 leave: bool = True, unit: str = "it", seconds: float = DEFAULT_SECONDS):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.initial, self.disable, self.leave, self.seconds = initial, initial, disable, leave, seconds
        self.postfix: dict = {}
        self.start = self.last_line = time.monotonic()
        self.said, self.closed = None, False  # the count the last line showed

    def __iter__(self):
        in_hand = False
        try:
            for item in self.iterable:
                in_hand = True
                yield item
                in_hand = False
                self.update()
        finally:  # exhausted, or the loop was left (break, an exception) with an item in hand
            self.n += in_hand
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        """Values shown at the end of each line as key=value (tqdm's signature; `refresh` is ignored)."""
        self.postfix = {**(ordered_dict or {}), **values}

    def update(self, n: int = 1) -> None:
        """`n` more items done; prints a line when `seconds` have passed since the last one."""
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last_line >= self.seconds and not (self.total and self.n >= self.total):
            self._write(self._line(now, final=False))
            self.last_line = now

    def close(self) -> None:
        """The final line (see the class); later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if not self.disable and (self.leave or self.said is not None) and self.said != self.n:
            self._write(self._line(time.monotonic(), final=True))

    def _line(self, now: float, final: bool) -> str:
        elapsed, done = now - self.start, self.n - self.initial
        count = f"{self.n}"
        if self.total:
            count = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        parts = [f"{count} in {_duration(elapsed)}"]
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        if rate is not None:
            parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{self.unit}")
            if not final and self.total and self.total > self.n:
                parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        postfix = " ".join(f"{key}={_value(value)}" for key, value in self.postfix.items())
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts + ([postfix] if postfix else []))

    def _write(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        self.said = self.n


def _duration(seconds: float) -> str:
    """47s, 12m05s, 3h02m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def configure_library_bars() -> None:
    """Turn off the progress bars of `datasets` (`.map`, saving to disk) and `transformers` (loading and writing
    weights, which also covers huggingface_hub's) unless `progress()` would draw a bar: stderr is not a TTY, or
    LLMREC_PROGRESS is log | off. HF_DATASETS_DISABLE_PROGRESS_BARS, when set, keeps the last word for datasets.
    Called once at the start of `llmrec.cli.main`; raises ConfigError like `settings()`."""
    mode, _ = settings()
    if mode == "bar":
        return
    import datasets
    from transformers.utils import logging as transformers_logging

    if os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS") is None:  # else datasets warns and keeps its setting
        datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
