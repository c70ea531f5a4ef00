"""Resource limits for a test: a write that fails part way, as on a full disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE (`ulimit -f`) at `limit` bytes for this process: a write past it fails with EFBIG
    (Python ignores SIGXFSZ, which would otherwise end the process)."""
    import resource
    import signal

    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
