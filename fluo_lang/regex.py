"""Regular expressions for `matches`: RE2, so matching time is linear in the input.

Compiling is not: RE2 takes up to about 0.1 s to build a large program, or to refuse
one past its memory (`\\pL{999}`: "pattern too large"). So what RE2 made of a pattern
is kept by its text (`_outcomes`; RE2's own cache keeps the compiled programs), and
the patterns of one file may compile to `FILE_INSTRUCTIONS` in all (`RegexBudget`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import re2

OUTCOMES_KEPT = 4_096
"""Patterns whose outcome (program size, or RE2's reason for refusing) is kept, the least recently used
dropped first."""
FILE_INSTRUCTIONS = 4_000_000
"""RE2 instructions the distinct patterns of one file may compile to in all (the largest program RE2 builds is
about 530,000 instructions; every pattern of the examples is under 100)."""
REFUSED_INSTRUCTIONS = 500_000
"""What a pattern RE2 refuses as too large counts against `FILE_INSTRUCTIONS`: RE2 gave up once building it
reached its memory limit, about the largest program it builds."""

_outcomes: OrderedDict[str, int | str] = OrderedDict()
_lock = threading.Lock()


class RegexError(ValueError):
    """A pattern RE2 rejects; the message is RE2's own reason."""


class RegexBudgetExhausted(Exception):
    """A pattern not compiled because the earlier patterns of its file used up `FILE_INSTRUCTIONS`."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # errors come back as diagnostics, not on stderr
    return options


def _re2_compile(pattern: str) -> Any:
    """RE2's compile of `pattern` (UTF-8): the one place a pattern of a rule is compiled."""
    return re2.compile(pattern, _options())


def _reason(exc: re2.error) -> str:
    reason = exc.args[0] if exc.args else "invalid pattern"
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def compile_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2 (UTF-8); `RegexError` with RE2's reason if it rejects it.

    A refusal is kept (`_outcomes`) and raised again without compiling; RE2 keeps the programs it built.
    """
    with _lock:
        outcome = _outcomes.get(pattern)
        if outcome is not None:
            _outcomes.move_to_end(pattern)
    if isinstance(outcome, str):
        raise RegexError(outcome)
    try:
        compiled = _re2_compile(pattern)
    except re2.error as exc:
        outcome = _reason(exc)
        _keep(pattern, outcome)
        raise RegexError(outcome) from None
    _keep(pattern, int(compiled.programsize))
    return compiled


def program_size(pattern: str) -> int:
    """The size of the RE2 program `pattern` compiles to (kept: compiled once); `RegexError` if RE2 rejects it."""
    with _lock:
        outcome = _outcomes.get(pattern)
    if isinstance(outcome, int):
        return outcome
    return int(compile_regex(pattern).programsize)


def _keep(pattern: str, outcome: int | str) -> None:
    with _lock:
        _outcomes[pattern] = outcome
        _outcomes.move_to_end(pattern)
        while len(_outcomes) > OUTCOMES_KEPT:
            _outcomes.popitem(last=False)


Consult = tuple[str, int | str | None]
"""A pattern a `RegexBudget` was asked about, and its outcome: None when it was past the budget."""


class RegexBudget:
    """The RE2 instructions the distinct patterns of one file may still compile to (`FILE_INSTRUCTIONS`).

    Each distinct pattern is charged once, its program size (at least its length; `REFUSED_INSTRUCTIONS` for one
    RE2 refuses as too large), whether or not its outcome was kept from before: what a file's check reports
    depends on the file alone. Once the budget is spent, a new pattern is not compiled (`RegexBudgetExhausted`).
    `consulted` is every pattern asked about, in order, so a part of a file checked before (an editor's rule)
    can be charged again without checking it (`replay`).
    """

    __slots__ = ("consulted", "left", "seen")

    def __init__(self, instructions: int = FILE_INSTRUCTIONS) -> None:
        self.left = instructions
        self.seen: dict[str, int | str] = {}
        self.consulted: list[Consult] = []

    def check(self, pattern: str) -> int:
        """`pattern`'s program size; `RegexError` if RE2 rejects it, `RegexBudgetExhausted` past the budget."""
        outcome = self.seen.get(pattern)
        if outcome is None:
            if self.left <= 0:
                self.consulted.append((pattern, None))
                raise RegexBudgetExhausted
            try:
                outcome = program_size(pattern)
            except RegexError as exc:
                outcome = str(exc)
            self.left -= _charge(pattern, outcome)
            self.seen[pattern] = outcome
        self.consulted.append((pattern, outcome))
        if isinstance(outcome, str):
            raise RegexError(outcome)
        return outcome

    def replay(self, consults: Sequence[Consult]) -> bool:
        """Whether asking about the patterns of `consults` from here gives what it gave (each outcome known, or
        past the budget); if so, they are charged as `check` would charge them, and nothing is compiled."""
        left, seen = self.left, dict[str, int | str]()
        for pattern, outcome in consults:
            known = pattern in self.seen or pattern in seen
            if not known and left <= 0:
                if outcome is not None:
                    return False
            elif outcome is None:
                return False
            elif not known:
                seen[pattern] = outcome
                left -= _charge(pattern, outcome)
        self.left = left
        self.seen.update(seen)
        self.consulted.extend(consults)
        return True


def _charge(pattern: str, outcome: int | str) -> int:
    """What a pattern costs a `RegexBudget`, by what RE2 made of it."""
    if isinstance(outcome, int):
        return max(outcome, len(pattern))
    return REFUSED_INSTRUCTIONS if "too large" in outcome else len(pattern)


def latin1_program_size(pattern: str) -> int | None:
    """The size of the RE2 program `pattern` (its UTF-8 bytes) compiles to when each byte is a character
    (Latin-1): its structure without the UTF-8 byte ranges of its classes. None if RE2 rejects it so."""
    options = _options()
    options.encoding = re2.Options.Encoding.LATIN1
    try:
        return int(re2.compile(pattern.encode("utf-8", "surrogatepass"), options).programsize)
    except re2.error:
        return None
