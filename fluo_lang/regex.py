"""Regular expressions for `matches`: RE2, so matching time is linear in the input."""

from __future__ import annotations

from typing import Any

import re2


class RegexError(ValueError):
    """A pattern RE2 rejects; the message is RE2's own reason."""


def compile_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2 (UTF-8); `RegexError` with RE2's reason if it rejects it."""
    options = re2.Options()
    options.log_errors = False  # errors come back as diagnostics, not on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


def latin1_program_size(pattern: str) -> int | None:
    """The size of the RE2 program `pattern` (its UTF-8 bytes) compiles to when each byte is a character
    (Latin-1): its structure without the UTF-8 byte ranges of its classes. None if RE2 rejects it so."""
    options = re2.Options()
    options.log_errors = False
    options.encoding = re2.Options.Encoding.LATIN1
    try:
        return int(re2.compile(pattern.encode("utf-8", "surrogatepass"), options).programsize)
    except re2.error:
        return None
