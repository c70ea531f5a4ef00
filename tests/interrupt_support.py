"""Ctrl-C as a shell sends it, landing while fluo is held reading a FIFO (so mid-run however slow the machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

AGAIN_EVERY = 1.0
"""A SIGINT that arrives just before a blocking read is only seen when the read returns (CPython checks
for signals between bytecodes and on EINTR): it is sent again, as a user presses Ctrl-C again."""


def sigint_default() -> None:
    """In the child: SIGINT as a terminal's Ctrl-C finds it, even when the tests run where it is ignored
    (a background job of a script), which Python, and so fluo, would keep ignoring."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_while_reading(argv: list[str], fifo: Path, cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    """Run `argv`, which reads `fifo`; once it has opened it, Ctrl-C; its (status, stdout, stderr)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default)
    writer = None
    try:
        deadline = time.monotonic() + 30
        while writer is None:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the reader opens it
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
        while True:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=AGAIN_EVERY)
                break
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "no exit within 30 s of Ctrl-C"
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err
