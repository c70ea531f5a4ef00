"""What `fluo serve` keeps across a clean restart: the ids of the traces it evaluated, for late spans.

A span of a trace evaluated before a restart would otherwise start a trace of its own after it, and a
fragment would fire on its own (no root, say). At a clean stop the remembered ids (`RememberedIds`) are
written beside the store (`--db`), with when each trace was evaluated, and read at the next start: those
still within `--late-span-memory`, at most `MAX_REMEMBERED`. About 24 bytes an id on disk (a million:
24 MB, written in well under a second). A crash (`kill -9`) writes nothing, and neither does `--no-db`.

The file: `MAGIC`, the number of ids n (8 bytes, little-endian), n completion times (float64 seconds since
the epoch, little-endian), then n trace ids of 16 bytes, oldest first.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import time
from array import array
from pathlib import Path

from .assembly import RememberedIds
from .config import PRIVATE_MODE, REMEMBERED_SUFFIX, beside

MAGIC = b"FLUOIDS1"
ID_BYTES = 16


def remembered_path(db: Path) -> Path:
    """The file beside the store that holds the remembered ids."""
    return beside(db, REMEMBERED_SUFFIX)


def save_remembered(path: Path, done: RememberedIds, now: float) -> int:
    """Write the remembered ids (`now`: monotonic) to `path`, whole or not at all; how many."""
    wall = time.time()
    times = array("d")
    ids: list[bytes] = []
    for stamp, batch in done.stamped(now):
        joined = b"".join(batch)
        if len(joined) != ID_BYTES * len(batch):  # OTLP trace ids are 16 bytes; anything else is left out
            batch = [i for i in batch if len(i) == ID_BYTES]
            joined = b"".join(batch)
        times.extend([wall - (now - stamp)] * len(batch))
        ids.append(joined)
    if sys.byteorder != "little":
        times.byteswap()
    part = path.with_name(path.name + ".part")
    with contextlib.suppress(FileNotFoundError):  # a leftover, or a link planted there to have its target written
        part.unlink()
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(times)))
            f.write(times.tobytes())
            f.write(b"".join(ids))
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return len(times)


class StateError(Exception):
    """The file is not one `save_remembered` wrote (one line)."""


def load_remembered(path: Path, now: float, memory: float, limit: int) -> list[tuple[float, list[bytes]]]:
    """The ids in `path` evaluated within `memory` seconds, at most the newest `limit`, in batches of one
    completion time each stamped on the monotonic clock (`now`), oldest first, for `RememberedIds.restore`.

    Nothing when there is no file; StateError when it is not one this module wrote."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if data[: len(MAGIC)] != MAGIC or len(data) < len(MAGIC) + 8:
        raise StateError(f"{path} is not a file of remembered trace ids")
    (n,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    if len(data) != start + n * (8 + ID_BYTES):
        raise StateError(f"{path} is cut short or too long for its {n} trace ids")
    times = array("d")
    times.frombytes(data[start : start + 8 * n])
    if sys.byteorder != "little":
        times.byteswap()
    ids_at = start + 8 * n
    wall = time.time()
    since = wall - memory
    first = max(0, n - limit)
    while first < n and times[first] <= since:  # oldest first: the ones past the memory are a prefix
        first += 1
    batches: list[tuple[float, list[bytes]]] = []
    last = None
    for k in range(first, n):
        t = times[k]
        trace_id = data[ids_at + ID_BYTES * k : ids_at + ID_BYTES * (k + 1)]
        if t != last:
            batches.append((now - (wall - t), []))
            last = t
        batches[-1][1].append(trace_id)
    return batches
