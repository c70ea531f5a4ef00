"""FLUO's native span reader (fluo_lang/_spanreader.c): OTLP trace requests straight to spans; see `otlp.read_spans`."""

from typing import Any

def configure(span_class: type, hooks: dict[str, Any], /) -> None: ...
def read(
    data: bytes,
    plan: tuple[tuple[str, bytes, tuple[tuple[bytes, str], ...]], ...],
    shared: object | None,
    clamped: list[Any] | None,
    /,
) -> list[Any] | None: ...
