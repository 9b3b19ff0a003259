"""Peak memory of one benchmark stage: CUDA's allocator peak on a GPU, else the process's sampled RSS.

The CPU figure is the resident set of the whole process while the stage ran (it includes what was
already loaded), sampled every 50 ms from /proc; where /proc is missing it is None, not a guess.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

STATM = Path("/proc/self/statm")


def resident_mb() -> float | None:
    try:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """`with PeakMemory() as m: ...` then `m.peak_mb`."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_mb = interval, None
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        while True:
            now = resident_mb()
            if now is not None:
                self.peak_mb = max(self.peak_mb or 0.0, now)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        elif resident_mb() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if torch.cuda.is_available():
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
