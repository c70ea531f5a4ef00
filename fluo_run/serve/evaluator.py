"""Evaluation: completed traces through the rule set, on a thread of its own.

Per-trace rules run on each completed trace (`Program.evaluate_trace`). The
trace then joins the tumbling window of every windowed rule length that holds
its completion time (its latest span end, as `fluo eval` places it). A window
[start, end) closes, and its rules run once (`Program.evaluate_window`), when
the wall clock is past `end + grace` and no trace has joined it for
`trace_idle` seconds, or at the latest once it has been open for its length
plus `grace` plus `max_trace_age`; on shutdown every open window closes. A trace completed
after its window closed is left out of that window and counted
(`fluo_window_late_traces`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from fluo_lang.evaluate import CompiledRule, Program, Signal
from fluo_lang.otlp import detach_spans
from fluo_lang.trace import MAX_EMPTY_WINDOWS, Trace, Window
from fluo_lang.values import format_duration

from .assembly import Completed
from .metrics import Metrics

log = logging.getLogger("fluo.serve")

MAX_CLOSED_REMEMBERED = 10_000


class WindowSet:
    """The open windows of one window length.

    With `start_ns` (the wall clock when the runtime took the length on), the
    windows that start at or after it and close with no trace in them are
    evaluated too, empty: a rule about silence (`window.traces.count() > 0`)
    fires on them. Windows before it (replayed old traffic) are only the ones
    traces fall in, as in `fluo eval`.
    """

    def __init__(self, length_ns: int, start_ns: int | None = None) -> None:
        self.length = length_ns
        self.open: dict[int, tuple[list[Trace], list[float]]] = {}
        self.closed: dict[int, None] = {}
        self.spans = 0
        self.first_empty = None if start_ns is None else -(-start_ns // length_ns)
        """The first window that may close empty: the first starting at or after `start_ns`."""
        self.next_empty = self.first_empty
        """Windows from `first_empty` up to here have closed, empty or not, unless still open."""

    def add(self, trace: Trace, now: float) -> bool:
        """Place a trace in its window; False when that window has already closed."""
        if not trace.spans:
            return True
        k = trace.end // self.length
        if k in self.closed:
            return False
        entry = self.open.get(k)
        if entry is None:
            first, upto = self.first_empty, self.next_empty
            if first is not None and upto is not None and first <= k < upto:
                return False  # closed empty, and since forgotten by `closed`
            entry = self.open[k] = ([], [now, now])
        entry[0].append(trace)
        entry[1][0] = now
        self.spans += len(trace.spans)
        return True

    def due(self, now: float, wall_ns: int, grace: float, quiet: float, max_open: float = float("inf")) -> list[Window]:
        """Windows to close: past their end plus `grace` and quiet for `quiet` seconds, or open for `max_open`.

        Windows with no trace close once past their end plus `grace`, the time a
        trace completed in them has to arrive; at most `MAX_EMPTY_WINDOWS` of them
        at once (the rest, after a jump of the clock, are skipped with a warning).
        """
        out = []
        for k in sorted(self.open):
            _, (touched, opened) = self.open[k]
            end = (k + 1) * self.length
            if (wall_ns >= end + grace * 1e9 and now - touched >= quiet) or now - opened >= max_open:
                out.append(self._close(k))
        if self.next_empty is not None:
            last = (wall_ns - round(grace * 1e9)) // self.length - 1  # the last window past its end plus grace
            first = max(self.next_empty, last + 1 - MAX_EMPTY_WINDOWS)
            if first > self.next_empty:
                log.warning(
                    "%d empty windows of %s not evaluated: the clock jumped ahead", first - self.next_empty,
                    format_duration(self.length),
                )  # fmt: skip
            for k in range(first, last + 1):
                if k not in self.open and k not in self.closed:
                    self._remember_closed(k)
                    out.append(Window(k * self.length, (k + 1) * self.length, []))
            self.next_empty = max(self.next_empty, last + 1)
            out.sort(key=lambda w: w.start)
        return out

    def close_all(self) -> list[Window]:
        return [self._close(k) for k in sorted(self.open)]

    def _close(self, k: int) -> Window:
        traces, _ = self.open.pop(k)
        self.spans -= sum(len(t.spans) for t in traces)
        self._remember_closed(k)
        return Window(k * self.length, (k + 1) * self.length, traces)

    def _remember_closed(self, k: int) -> None:
        self.closed[k] = None
        if len(self.closed) > MAX_CLOSED_REMEMBERED:
            del self.closed[next(iter(self.closed))]


class Evaluator:
    """Owns the queue of completed traces, the program and the windows; publishes signals."""

    def __init__(
        self,
        program: Program,
        metrics: Metrics,
        publish: Callable[[Sequence[dict[str, Any]]], None] | None,
        *,
        trace_idle: float,
        grace: float,
        max_trace_age: float = 60.0,
    ) -> None:
        self.metrics = metrics
        self.publish = publish
        self.trace_idle = trace_idle
        self.grace = grace
        self.max_trace_age = max_trace_age
        self.queue: deque[Completed] = deque()
        self.cond = threading.Condition()
        self.pending_spans = 0
        self.busy = False
        self.stopping = False
        self.program = program
        self.windows: dict[int, WindowSet] = {}
        self._next_program: Program | None = None
        self._reported_errors = 0
        self._adopt(program)
        self.thread = threading.Thread(target=self._run, name="fluo-evaluator", daemon=True)
        self.tick = min(0.1, trace_idle / 4)

    # -- called from other threads -------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def submit(self, completed: Sequence[Completed]) -> None:
        if not completed:
            return
        n = sum(len(c.spans) for c in completed)
        with self.cond:
            self.queue.extend(completed)
            self.pending_spans += n
            self.cond.notify()

    def swap(self, program: Program) -> None:
        """Use a new rule set from the next trace on."""
        with self.cond:
            self._next_program = program
            self.cond.notify()

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and not self.busy

    def stop(self, timeout: float | None = None) -> None:
        """Evaluate everything queued, close every window, then stop."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout)

    @property
    def window_spans(self) -> int:
        return sum(w.spans for w in list(self.windows.values()))

    # -- the evaluator thread -------------------------------------------------

    def _adopt(self, program: Program) -> None:
        self.program = program
        lengths = {r.ir.window_ns for r in program.window_rules if r.ir.window_ns is not None}
        for length in list(self.windows):
            if length not in lengths:
                self._evaluate_windows(self.windows.pop(length).close_all())
        for length in lengths:
            self.windows.setdefault(length, WindowSet(length, time.time_ns()))
        self.metrics.rules_loaded.labels("trace").set(len(program.trace_rules))
        self.metrics.rules_loaded.labels("window").set(len(program.window_rules))
        self._reported_errors = len(program.errors)

    def _run(self) -> None:
        while True:
            with self.cond:
                if not self.queue and not self.stopping and self._next_program is None:
                    self.cond.wait(self.tick)
                batch = list(self.queue)
                self.queue.clear()
                stopping = self.stopping
                program, self._next_program = self._next_program, None
                self.busy = bool(batch)
            if program is not None:
                self._adopt(program)
            for i in range(0, len(batch), 64):
                chunk = batch[i : i + 64]
                try:
                    self._evaluate_traces(chunk)
                except Exception:  # a FLUO bug: log it, count the traces, keep evaluating
                    log.exception("internal error evaluating %d trace(s); they produced no signals", len(chunk))
                    self.metrics.rule_errors.labels("*").inc(len(chunk))
                with self.cond:
                    self.pending_spans -= sum(len(c.spans) for c in chunk)
            with self.cond:
                self.busy = False
            now = time.monotonic()
            wall = time.time_ns()
            for ws in list(self.windows.values()):
                max_open = ws.length / 1e9 + self.grace + self.max_trace_age
                self._evaluate_windows(ws.due(now, wall, self.grace, self.trace_idle, max_open))
            if stopping:
                with self.cond:
                    if self.queue:
                        continue
                for ws in list(self.windows.values()):
                    self._evaluate_windows(ws.close_all())
                return

    def _evaluate_traces(self, batch: Sequence[Completed]) -> None:
        program = self.program
        metrics = self.metrics
        rules = len(program.trace_rules)
        windowed = list(self.windows.values())
        signals: list[Signal] = []
        now = time.monotonic()
        clock = time.perf_counter
        latencies: list[float] = []
        took = latencies.append
        late = duplicates = 0
        for c in batch:
            trace = Trace(c.trace_id, c.spans)
            duplicates += trace.duplicates
            t0 = clock()
            signals.extend(program.evaluate_trace(trace))
            took(clock() - t0)
            if windowed:  # held for a window's length: let go of the requests the spans came in
                detach_spans(trace.spans)
            for ws in windowed:
                if not ws.add(trace, now):
                    late += 1
        metrics.eval_latency.observe_all(latencies)
        metrics.traces_evaluated.inc(len(batch))
        metrics.rule_evaluations.inc(rules * len(batch))
        if late:
            metrics.window_late_traces.inc(late)
        if duplicates:
            metrics.spans_duplicate.inc(duplicates)
        self._report_errors()
        self._emit(signals)

    def _evaluate_windows(self, windows: Sequence[Window]) -> None:
        if not windows:
            return
        try:
            self._evaluate_windows_unguarded(windows)
        except Exception:  # a FLUO bug: log it, keep evaluating
            log.exception("internal error evaluating %d window(s); they produced no signals", len(windows))
            self.metrics.rule_errors.labels("*").inc(len(windows))

    def _evaluate_windows_unguarded(self, windows: Sequence[Window]) -> None:
        by_length: dict[int, list[CompiledRule]] = {}
        for r in self.program.window_rules:
            if r.ir.window_ns is not None:
                by_length.setdefault(r.ir.window_ns, []).append(r)
        signals: list[Signal] = []
        for w in windows:
            rules = by_length.get(w.end - w.start, [])
            signals.extend(self.program.evaluate_window(w, rules))
            self.metrics.rule_evaluations.inc(len(rules))
        self.metrics.windows_closed.inc(len(windows))
        self._report_errors()
        self._emit(signals)

    def _report_errors(self) -> None:
        errors = self.program.errors
        for e in errors[self._reported_errors :]:
            self.metrics.rule_errors.labels(e.rule).inc()
            where = f"trace {e.trace_id}" if e.trace_id else "a window"
            log.error("internal error evaluating rule %s on %s: %s", e.rule, where, e.message)
        if len(errors) > 1000:
            del errors[:]
        self._reported_errors = len(errors)

    def _emit(self, signals: list[Signal]) -> None:
        if not signals:
            return
        counts: dict[tuple[str, str], int] = {}
        for s in signals:
            key = (s.rule, s.severity)
            counts[key] = counts.get(key, 0) + 1
        for (rule, severity), n in counts.items():
            self.metrics.signals.labels(rule, severity).inc(n)
        if self.publish is not None:  # None: no sink, so nobody reads the JSON
            self.publish([s.to_json() for s in signals])
