"""A one-line progress counter for long runs on a terminal; nothing at all otherwise."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from .runner import CaseResult


class Progress:
    """Draws `[n/total] file::case` over itself once a run has lasted `delay` seconds, at most every `every`.

    Enabled only when the stream is a terminal, so piped and CI output stays plain.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        enabled: bool | None = None,
        delay: float = 0.5,
        every: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty() if enabled is None else enabled
        self.delay = delay
        self.every = every
        self.clock = clock
        self.started = clock()
        self.last_draw: float | None = None
        self.done = 0
        self.width = 0

    def __call__(self, result: CaseResult) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = self.clock()
        if now - self.started < self.delay:
            return
        if self.last_draw is not None and now - self.last_draw < self.every and self.done < self.total:
            return
        self.last_draw = now
        columns = shutil.get_terminal_size((80, 24)).columns
        head = f"[{self.done}/{self.total}] "
        line = (head + result.id)[: max(columns - 1, len(head))]
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        """Erase the counter so the report starts on a clean line."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
