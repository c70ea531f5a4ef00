"""The `fluo` command as installed (`[project.scripts]`): FLUO's command line, imported here, so that a Ctrl-C
while its modules load (the first second of any command, before the CLI's own handling of it) stops it as
Ctrl-C stops every command: quietly, with `EXIT_INTERRUPTED`. Before, Python printed a KeyboardInterrupt
traceback and the process died by the signal."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT): 128 + 2, as a shell reports a program it ended."""


def main() -> None:
    try:
        from fluo_run.cli import main as command
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    command()
