"""FLUO rule test runner, OTLP runtime and command line."""

import os as _os
import signal as _signal
import sys as _sys

EXIT_STOPPED_WHILE_STARTING = 0
"""`fluo serve` stopped by SIGTERM or SIGINT before it served: nothing was received, so nothing was lost."""


def _stop_while_starting(signum: int, frame: object) -> None:
    name = _signal.Signals(signum).name
    _sys.stderr.write(f"fluo: {name} while starting: stopped before serving (nothing was received)\n")
    _sys.stderr.flush()
    raise SystemExit(EXIT_STOPPED_WHILE_STARTING)


def _guard_serve_start(argv: list[str]) -> None:
    """For `fluo serve`, from the first moment FLUO's code runs: SIGHUP is ignored and SIGTERM or SIGINT (Ctrl-C)
    stops it quietly (one line, exit 0) until the runtime installs its own handlers (`runtime.serve`), about a
    second later, after the imports and the rules. Before this, while the interpreter starts (tens of ms), the
    default actions apply.

    Before, logrotate's `kill -HUP` or a SIGTERM in that second ended it by the signal's default action
    (killed, exit -1 or -15, not a documented status, and no line said why), and a Ctrl-C during the imports
    printed a KeyboardInterrupt traceback. This runs when the package is first
    imported, before `fluo_run.cli` imports anything heavy; only for the `fluo` command (or `python -m
    fluo_run.cli`, whose argv[0] is still "-m" then) running `serve`, never for a program importing the library."""
    if len(argv) < 2 or argv[1] != "serve" or _os.path.basename(argv[0]) not in ("fluo", "fluo.exe", "-m"):
        return
    try:
        _signal.signal(_signal.SIGINT, _stop_while_starting)
        _signal.signal(_signal.SIGTERM, _stop_while_starting)
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)  # last: a test waits for it to see all three in place
    except (AttributeError, ValueError):  # no SIGHUP (Windows), or not the main thread
        pass


_guard_serve_start(_sys.argv)
