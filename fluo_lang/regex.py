"""Regular expressions for `matches`: RE2, so matching time is linear in the input."""

from __future__ import annotations

from typing import Any

import re2


class RegexError(ValueError):
    """A pattern RE2 rejects; the message is RE2's own reason."""


def compile_regex(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # errors come back as diagnostics, not on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None
