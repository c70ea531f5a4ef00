"""Running test code as a user who may read the signal store but not write beside it.

As root the code runs in a forked child that becomes `nobody`: forked, not started
anew, because `nobody` may not be able to read the interpreter or the checkout (a
clone in a 0700 folder, a venv under /root), which a fresh `python -m fluo_run.cli`
as `nobody` would need. Whatever the code imports must be imported before it runs.
As any other user, who cannot become another, the code runs in this process with the
write permission of the given folders taken away meanwhile: file modes bind every
user but root.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

NOBODY = 65534
TIMEOUT = 60.0


def as_reader(fn: Callable[[], str], *, folders: Sequence[Path] = ()) -> str:
    """`fn()`, run by a user who may not write to `folders` (nor, as root, to anything root owns)."""
    if os.geteuid() != 0:
        with _unwritable(folders):
            return fn()
    return _in_child_as_nobody(fn)


@contextlib.contextmanager
def _unwritable(folders: Sequence[Path]) -> Iterator[None]:
    modes = [(f, f.stat().st_mode & 0o7777) for f in folders]
    try:
        for f, mode in modes:
            f.chmod(mode & ~0o222)
        yield
    finally:
        for f, mode in modes:
            f.chmod(mode)


def _in_child_as_nobody(fn: Callable[[], str]) -> str:
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = "ok:" + fn()
            status = 0
        except BaseException:
            out = "error:" + traceback.format_exc()
        try:
            data = out.encode()
            while data:
                data = data[os.write(write_end, data) :]
        finally:
            os._exit(status)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"the reader did not finish within {TIMEOUT:.0f} s")
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    result = b"".join(chunks).decode()
    kind, _, value = result.partition(":")
    if kind != "ok":
        raise AssertionError(f"the reader (as nobody) failed:\n{value}")
    return value
