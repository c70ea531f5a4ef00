"""A one-line progress counter for long runs on a terminal; nothing at all otherwise."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from fluo_lang.values import printable

from .runner import CaseResult


class Progress:
    """Draws `[n/total] file::case` over itself once a run has lasted `delay` seconds, at most every `every`.

    The run starts when the counter is made, before test files are read: while they
    are, `loading` draws `[loading n/total] FILE`; `total` is then set to the cases
    selected. Enabled only when the stream is a terminal, so piped and CI output stays plain; `fluo test`
    draws it on stderr, never amid the report. Names are printed as the report prints them (`printable`).
    """

    def __init__(
        self,
        stream: TextIO,
        total: int = 0,
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
        self._draw(f"[{self.done}/{self.total}] ", result.id, last=self.done >= self.total)

    def loading(self, index: int, total: int, path: str) -> None:
        """Test file `index` (0-based) of `total` is being read."""
        self._draw(f"[loading {index + 1}/{total}] ", path, last=False)

    def _draw(self, head: str, text: str, *, last: bool) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self.started < self.delay:
            return
        if self.last_draw is not None and now - self.last_draw < self.every and not last:
            return
        self.last_draw = now
        columns = shutil.get_terminal_size((80, 24)).columns
        line = (head + printable(text))[: max(columns - 1, len(head))]
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        """Erase the counter so the report starts on a clean line."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
