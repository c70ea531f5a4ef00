"""Evaluation: completed traces through the rule set, on a thread of its own.

Per-trace rules run on each completed trace (`Program.evaluate_trace`). The
trace then joins the tumbling window of every windowed rule length that holds
its completion time (its latest span end, as `fluo eval` places it). A window
[start, end) closes, and its rules run once (`Program.evaluate_window`), when
the wall clock is past `end + grace` and no trace has joined it for
`trace_idle` seconds, or at the latest once it has been open for its length
plus `grace` plus `max_trace_age`; on shutdown every open window closes. A trace completed
after its window closed is left out of that window and counted
(`fluo_window_late_traces`). A window that cap closes before its end plus `grace` (its traces
came from a clock ahead) is closed early, and not remembered as closed until its end plus `grace`:
traces that complete in it before then open it again, and it is evaluated again with them,
its signals partial (`reopened`); with none, it is not evaluated again. At most
`MAX_EARLY_REMEMBERED` of them are remembered one by one (a sender choosing its span times makes one
per trace); past it the furthest ahead are forgotten into a range, whose windows, opened or closing
empty, are evaluated with their signals partial (`early_forgotten`): each may have been evaluated before.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fluo_lang.builtins import Member
from fluo_lang.evaluate import TRUNCATED_RULE, TRUNCATED_SEVERITY, CompiledRule, Program, Signal
from fluo_lang.otlp import detach_spans
from fluo_lang.trace import MAX_EMPTY_WINDOWS, Span, Trace, Window
from fluo_lang.values import format_duration, format_timestamp

from .assembly import Completed
from .metrics import ANY_RULE, Metrics
from .receivers import Throttled

log = logging.getLogger("fluo.serve")

MAX_CLOSED_REMEMBERED = 10_000
MAX_EARLY_REMEMBERED = 10_000
MAX_OPEN_WINDOWS = 100_000
"""Open windows of one length: past it the one open longest closes at once (a sender choosing its span times
opens one a trace, each some 500 bytes counted only, held until the open-time cap closes it)."""


@dataclass
class WindowNote:
    """What serve missed of a window: traces left out at the window span limit, or an early close."""

    traces_left_out: int = 0
    spans_left_out: int = 0
    closed_early_ns: int | None = None
    reopened_ns: int | None = None
    """When it was closed early before: its signals count only the traces that came since."""
    forgotten_ns: int | None = None
    """It lies among forgotten windows closed early (`WindowSet.forgotten`), the last forgotten then: it may
    have been evaluated before, its signals count only the traces since."""
    keys_held: frozenset[str] | None = None
    """The span attributes all its traces were held with, when a reload made the rules read more."""
    keys_since_ns: int = 0
    """The reload that made the rules read more than `keys_held`."""


class WindowSet:
    """The open windows of one window length.

    With `start_ns` (the wall clock when the runtime took the length on), the
    windows that start at or after it and close with no trace in them are
    evaluated too, empty: a rule about silence (`window.traces.count() > 0`)
    fires on them. Windows before it (replayed old traffic) are only the ones
    traces fall in, as in `fluo eval`.

    Closed windows are remembered (a trace completing in one is late): the last
    `MAX_CLOSED_REMEMBERED` of them one by one, and those before as every window
    below `closed_below`.
    """

    def __init__(self, length_ns: int, start_ns: int | None = None) -> None:
        self.length = length_ns
        self.start_ns = start_ns
        self.open: dict[int, tuple[list[Trace], list[float]]] = {}
        self.closed: dict[int, None] = {}
        self._closed_order: list[int] = []
        """A heap of the windows in `closed` (and some since let go of): the lowest is forgotten first."""
        self.closed_below: int | None = None
        """Every window below it has closed: the ones `closed` forgot, and any before them."""
        self.early: dict[int, int] = {}
        """Windows closed early by the open-time cap, their end plus grace still to come: when."""
        self._early_order: list[int] = []
        """A heap of the windows in `early` (and some since let go of)."""
        self._early_top: list[int] = []
        """A heap of the windows in `early` negated (and some since let go of): the furthest ahead first."""
        self.forgotten: tuple[int, int, int] | None = None
        """The lowest and highest windows closed early that `early` forgot (past `MAX_EARLY_REMEMBERED`), and
        when it last forgot one: a window between them may have been evaluated before."""
        self.unsure: dict[int, int] = {}
        """Open windows opened among the `forgotten`: its last forgetting time when opened."""
        self.held_keys: dict[int, tuple[frozenset[str], int]] = {}
        """Per open window whose traces a reload made the rules read more of: the keys they were held with, when."""
        self.spans = 0
        self.left_out: dict[int, list[int]] = {}
        """Per open window, [traces, spans] left out of it at the window span limit."""
        self.notes: dict[int, WindowNote] = {}
        """Per closed window start (until the evaluator takes it): what it missed."""
        self.first_empty = None if start_ns is None else -(-start_ns // length_ns)
        """The first window that may close empty: the first starting at or after `start_ns`."""
        self.next_empty = self.first_empty
        """Windows from `first_empty` up to here have closed, empty or not, unless still open."""

    def _touch(self, k: int, now: float) -> tuple[list[Trace], list[float]] | None:
        """Window `k`, opened if need be and marked touched `now`; None when it has already closed."""
        if k in self.closed:
            return None
        entry = self.open.get(k)
        if entry is None:
            if k not in self.early:  # a window closed early is opened again
                if self.closed_below is not None and k < self.closed_below:
                    return None  # closed, and since forgotten by `closed`
                first, upto = self.first_empty, self.next_empty
                if first is not None and upto is not None and first <= k < upto:
                    return None  # closed empty, and since forgotten by `closed`
                if self.forgotten is not None and self.forgotten[0] <= k <= self.forgotten[1]:
                    self.unsure[k] = self.forgotten[2]
            entry = self.open[k] = ([], [now, now])
        entry[1][0] = now
        return entry

    def add(self, trace: Trace, now: float) -> bool:
        """Place a trace in its window; False when that window has already closed."""
        if not trace.spans:
            return True
        entry = self._touch(trace.end // self.length, now)
        if entry is None:
            return False
        entry[0].append(trace)
        self.spans += len(trace.spans)
        return True

    def leave_out(self, trace: Trace, now: float) -> bool:
        """Count a trace in its window without holding it (the window span limit); False when that window closed."""
        if not trace.spans:
            return True
        k = trace.end // self.length
        if self._touch(k, now) is None:
            return False
        counts = self.left_out.setdefault(k, [0, 0])
        counts[0] += 1
        counts[1] += len(trace.spans)
        return True

    def note(self, window: Window) -> WindowNote | None:
        """What a closed window missed (traces left out, closed early); None when nothing."""
        return self.notes.pop(window.start, None)

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
                if wall_ns < end + grace * 1e9:  # by the cap, early: its time is still to come
                    out.append(self._close(k, early_ns=wall_ns))
                else:
                    out.append(self._close(k))
        last = (wall_ns - round(grace * 1e9)) // self.length - 1  # the last window past its end plus grace
        while self._early_order and self._early_order[0] <= last:
            k = heapq.heappop(self._early_order)
            if k in self.early and k not in self.open:  # its time came with no trace: closed as it was
                del self.early[k]
                self._remember_closed(k)
        if self.next_empty is not None:
            first = max(self.next_empty, last + 1 - MAX_EMPTY_WINDOWS)
            if first > self.next_empty:
                log.warning(
                    "%d empty windows of %s not evaluated: the clock jumped ahead", first - self.next_empty,
                    format_duration(self.length),
                )  # fmt: skip
            for k in range(first, last + 1):
                if k not in self.open and k not in self.closed:
                    self._remember_closed(k)
                    out.append(self._empty(k))
            self.next_empty = max(self.next_empty, last + 1)
            out.sort(key=lambda w: w.start)
            if self.forgotten is not None and self.next_empty > self.forgotten[1]:
                self.forgotten = None  # each of them has closed since, and is remembered so
        return out

    def close_all(self, wall_ns: int | None = None, grace: float = 0.0) -> list[Window]:
        """Close every open window now (shutdown, or a reload that drops the length).

        With `wall_ns`, a window closed before its end plus `grace` is noted as closed
        early at that time: traces that would have joined it were still to come. The
        windows that ended by `wall_ns` with no trace in them, still in their grace, close
        (empty) too, as `due` would have closed them (a rule about silence sees them);
        an empty window not ended yet does not.
        """
        out = [self._close(k) for k in sorted(self.open)]
        if wall_ns is not None and self.next_empty is not None:
            last = wall_ns // self.length - 1  # the last window ended by `wall_ns`
            for k in range(max(self.next_empty, last + 1 - MAX_EMPTY_WINDOWS), last + 1):
                if k not in self.closed and k not in self.early:
                    self._remember_closed(k)
                    out.append(self._empty(k))
            self.next_empty = max(self.next_empty, last + 1)
            out.sort(key=lambda w: w.start)
        if wall_ns is not None:
            for window in out:
                if wall_ns < window.end + grace * 1e9:
                    note = self.notes.setdefault(window.start, WindowNote())
                    note.closed_early_ns = wall_ns
        return out

    def close_oldest(self, keep: int, wall_ns: int, grace: float) -> list[Window]:
        """Close the windows open longest until `keep` are open: early when before their end plus `grace`."""
        out = []
        for k in list(itertools.islice(self.open, max(0, len(self.open) - keep))):  # in the order they opened
            out.append(
                self._close(k, early_ns=wall_ns) if wall_ns < (k + 1) * self.length + grace * 1e9 else self._close(k)
            )
        return sorted(out, key=lambda w: w.start)

    def narrow(self, keys: frozenset[str], now_ns: int) -> None:
        """The rules now read more than `keys`, the span attributes the traces in the open windows were held with."""
        for k in self.open:
            held = self.held_keys.get(k)
            self.held_keys[k] = (keys if held is None else held[0] & keys, now_ns)

    def _close(self, k: int, early_ns: int | None = None) -> Window:
        """Close open window `k`; with `early_ns`, early at that time: not remembered as closed, its time to come."""
        traces, _ = self.open.pop(k)
        self.spans -= sum(len(t.spans) for t in traces)
        note = WindowNote()
        left = self.left_out.pop(k, None)
        if left is not None:
            note.traces_left_out, note.spans_left_out = left
        note.reopened_ns = self.early.pop(k, None)
        note.forgotten_ns = self.unsure.pop(k, None)
        held = self.held_keys.pop(k, None)
        if held is not None:
            note.keys_held, note.keys_since_ns = held
        if early_ns is None:
            self._remember_closed(k)
        else:
            note.closed_early_ns = self.early[k] = early_ns
            heapq.heappush(self._early_order, k)
            heapq.heappush(self._early_top, -k)
            self._forget_early(early_ns)
        if note != WindowNote():
            self.notes[k * self.length] = note
        return Window(k * self.length, (k + 1) * self.length, traces)

    def _empty(self, k: int) -> Window:
        """Window `k` closing with no trace; noted when it lies among the `forgotten`."""
        if self.forgotten is not None and self.forgotten[0] <= k <= self.forgotten[1]:
            self.notes.setdefault(k * self.length, WindowNote()).forgotten_ns = self.forgotten[2]
        return Window(k * self.length, (k + 1) * self.length, [])

    def _forget_early(self, now_ns: int) -> None:
        """Keep `early` to `MAX_EARLY_REMEMBERED` windows, forgetting the furthest ahead into `forgotten`."""
        while len(self.early) > MAX_EARLY_REMEMBERED and self._early_top:
            k = -heapq.heappop(self._early_top)
            if self.early.pop(k, None) is None:
                continue
            if self.forgotten is None:
                log.warning(
                    "more than %s windows of %s closed early (traces timed ahead): the furthest ahead are no longer "
                    "remembered one by one, and the signals of windows among them are partial (early_forgotten)",
                    f"{MAX_EARLY_REMEMBERED:,}", format_duration(self.length),
                )  # fmt: skip
                self.forgotten = (k, k, now_ns)
            else:
                self.forgotten = (min(k, self.forgotten[0]), max(k, self.forgotten[1]), now_ns)
        limit = 2 * len(self.early) + 64  # the heaps hold stale entries too: rebuilt when they pass it
        if len(self._early_order) > limit:
            self._early_order = sorted(self.early)
        if len(self._early_top) > limit:
            self._early_top = sorted(-k for k in self.early)

    def _remember_closed(self, k: int) -> None:
        self.closed[k] = None
        heapq.heappush(self._closed_order, k)
        while len(self.closed) > MAX_CLOSED_REMEMBERED and self._closed_order:
            lowest = heapq.heappop(self._closed_order)
            if lowest in self.closed:
                del self.closed[lowest]
                if self.closed_below is None or lowest >= self.closed_below:
                    self.closed_below = lowest + 1


def window_attribute_keys(rules: Sequence[CompiledRule]) -> frozenset[str] | None:
    """The span attribute keys `rules` can read; None: any of them.

    A rule reading the `attributes` map as a whole can read any key: then None.
    """
    keys: set[str] = set()
    for r in rules:
        for _, clause in r.ir.clauses():
            for n in clause.walk():
                if n.op == "attr":
                    keys.add(str(n.value))
                elif n.op == "get" and isinstance(n.value, Member) and n.value.name == "attributes":
                    return None
    return frozenset(keys)


def slim_trace(trace: Trace, keys: frozenset[str]) -> Trace:
    """`trace` with each span keeping only the attributes in `keys`: what a window holds.

    Each is kept as a rule's name reads it (`Span.attr`): a dotted name found in a map
    under a flat prefix is kept as that one flat key.

    Intrinsics (ids, name, service, times, status, kind) and the shared resource are
    kept; the span's own attribute bytes, read by no windowed rule, are let go.
    """
    out: list[Span] = []
    for s in trace.spans:
        attrs: dict[str, Any] | None = None
        for k in keys:
            v = s.attr(k)
            if v is not None:
                if attrs is None:
                    attrs = {}
                attrs[k] = v
        out.append(
            Span(
                trace_id=s.trace_id,
                span_id=s.span_id,
                parent_id=s.parent_id,
                name=s.name,
                service=s.service,
                start=s.start,
                end=s.end,
                status=s.status,
                status_message=s.status_message,
                kind=s.kind,
                attributes=attrs,
                resource=s.resource,
            )
        )
    return Trace(trace.trace_id, out)


class Evaluator:
    """Owns the queue of completed traces, the program and the windows; publishes signals.

    Open windows hold at most `max_window_spans` spans (summed over window lengths):
    a trace that would pass it is counted in its window but not held, and when that
    window closes its signals are marked partial and a `fluo.evaluation_truncated`
    signal says how much was left out.
    """

    def __init__(
        self,
        program: Program,
        metrics: Metrics,
        publish: Callable[[Sequence[dict[str, Any]]], None] | None,
        *,
        trace_idle: float,
        grace: float,
        max_trace_age: float = 60.0,
        max_window_spans: int = 1_000_000,
    ) -> None:
        self.metrics = metrics
        self.publish = publish
        self.trace_idle = trace_idle
        self.grace = grace
        self.max_trace_age = max_trace_age
        self.max_window_spans = max_window_spans
        self.queue: deque[Completed] = deque()
        self.cond = threading.Condition()
        self.pending_spans = 0
        self.busy = False
        self.stopping = False
        self.aborted = False
        self.batch_left = 0
        """Traces taken from the queue and not yet evaluated."""
        self.lost_traces = 0
        self.lost_windows = 0
        self.lost_signals = 0
        """After `abort`: what was not evaluated, and signals not handed to the sinks."""
        self.stopped_at_ns: int | None = None
        self.program = program
        self.windows: dict[int, WindowSet] = {}
        self._window_keys: frozenset[str] | None = None
        self._full_logged: set[tuple[int, int]] = set()
        self._crowded: set[int] = set()
        """The window lengths whose open windows reached `MAX_OPEN_WINDOWS`: warned of once."""
        self._next_program: Program | None = None
        self._reported_errors = 0
        self._windows_put_off = 0
        self._chunk_in_hand = 0
        self._fired = Throttled(
            log,
            logging.INFO,
            self.FIRED_LOG_EVERY,
            "%d more signal(s) fired, held back since the last signal line (at most one line a second)",
        )
        self._full = Throttled(
            log,
            logging.WARNING,
            self.FULL_LOG_EVERY,
            "%d more window(s) reached --max-window-spans, held back since the last such line (at most one line"
            f" every {self.FULL_LOG_EVERY:g}s); their later traces are counted, not held, and their signals will be"
            " partial",
        )
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

    @property
    def in_force(self) -> Program:
        """The rule set in force: the last one swapped in, even before the thread takes it on (at its next
        trace or tick), so what `/healthz` says agrees with the "rules reloaded" line logged at the swap."""
        with self.cond:
            return self._next_program or self.program

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and not self.busy

    def stop(self, timeout: float | None = None) -> None:
        """Evaluate everything queued, close every window, then stop."""
        self.request_stop()
        self.thread.join(timeout)

    def request_stop(self) -> None:
        """Ask the thread to evaluate everything queued, close every window and end (see `done`)."""
        with self.cond:
            self.stopping = True
            self.cond.notify()

    def abort(self) -> None:
        """Stop now: what is queued is not evaluated, open windows are not closed, no more signals go out.

        `lost_traces` and `lost_windows` then say what was left: set by the thread as it
        ends, or here from what it had not reached if it is still busy with one chunk.
        """
        with self.cond:
            if self.aborted:
                return
            self.aborted = True
            self.stopping = True
            # The chunk in hand is evaluated to its end; its signals are then counted as not handed over
            # (`lost_signals`), so its traces are not counted again here.
            self.lost_traces = len(self.queue) + self.batch_left - self._chunk_in_hand
            self.lost_windows = sum(len(ws.open) for ws in list(self.windows.values()))
            self.cond.notify()

    @property
    def chunk_in_hand(self) -> int:
        """Traces of the chunk being evaluated right now (0 between chunks)."""
        with self.cond:
            return self._chunk_in_hand

    @property
    def backlog(self) -> int:
        """Traces handed over and not evaluated yet: queued, or taken and not done."""
        with self.cond:
            return self.batch_left + sum(1 for c in self.queue if c.spans)

    def done(self) -> bool:
        return not self.thread.is_alive()

    @property
    def window_spans(self) -> int:
        return sum(w.spans for w in list(self.windows.values()))

    # -- the evaluator thread -------------------------------------------------

    def _adopt(self, program: Program) -> None:
        """Take a rule set on; the open windows of lengths it no longer uses close now, with the rules they had."""
        lengths = {r.ir.window_ns for r in program.window_rules if r.ir.window_ns is not None}
        for length in list(self.windows):
            if length not in lengths:
                ws = self.windows.pop(length)
                self._evaluate_windows(ws, ws.close_all(time.time_ns(), self.grace))  # still self.program: the old
        self.program = program
        held, keys = self._window_keys, window_attribute_keys(program.window_rules)
        if held is not None and (keys is None or not keys <= held):  # the traces held so far lack what is read now
            for ws in self.windows.values():
                ws.narrow(held, time.time_ns())
        for length in lengths:
            self.windows.setdefault(length, WindowSet(length, time.time_ns()))
        self._window_keys = keys
        for rule in program.rules:
            self.metrics.rule_loaded(rule.ir.id, rule.ir.severity)
        self.metrics.signals.labels(TRUNCATED_RULE, TRUNCATED_SEVERITY)
        self.metrics.rules_loaded.labels("trace").set(len(program.trace_rules))
        self.metrics.rules_loaded.labels("window").set(len(program.window_rules))
        self._reported_errors = len(program.errors)

    def _run(self) -> None:
        while True:
            with self.cond:
                if not self.queue and not self.stopping and self._next_program is None:
                    self.cond.wait(self.tick)
                if self.aborted:
                    self.queue.clear()
                    self._log_held_signals(at_end=True)
                    return
                batch = list(self.queue)
                self.queue.clear()
                self.batch_left = len(batch)
                stopping = self.stopping
                program, self._next_program = self._next_program, None
                self.busy = bool(batch)
            if program is not None:
                self._adopt(program)
            if batch:
                self._let_go_of_requests(batch)
            for i in range(0, len(batch), 64):
                chunk = batch[i : i + 64]
                with self.cond:
                    self._chunk_in_hand = len(chunk)
                try:
                    self._evaluate_traces(chunk)
                except Exception:  # a FLUO bug: log it, count the traces, keep evaluating
                    log.exception("internal error evaluating %d trace(s); they produced no signals", len(chunk))
                    self.metrics.rule_errors.labels(ANY_RULE).inc(len(chunk))
                with self.cond:
                    self.pending_spans -= sum(len(c.spans) for c in chunk)
                    self.batch_left -= len(chunk)
                    self._chunk_in_hand = 0
                    if self.aborted:
                        self._log_held_signals(at_end=True)
                        return
            with self.cond:
                self.busy = False
                more = bool(self.queue)
            if more and not stopping and self._windows_put_off < 2:
                # Traces that came while this batch was evaluated (or waited on a store) go first: they
                # may belong to windows now due, which would otherwise close without them. Each round
                # takes the whole queue, so under a queue that never empties windows are still checked
                # every third round.
                self._windows_put_off += 1
                continue
            self._windows_put_off = 0
            now = time.monotonic()
            wall = time.time_ns()
            for ws in list(self.windows.values()):
                max_open = ws.length / 1e9 + self.grace + self.max_trace_age
                self._evaluate_windows(ws, ws.due(now, wall, self.grace, self.trace_idle, max_open))
            if stopping:
                with self.cond:
                    if self.queue:
                        continue
                wall = self.stopped_at_ns = time.time_ns()
                for ws in list(self.windows.values()):
                    self._evaluate_windows(ws, ws.close_all(wall, self.grace))
                self._log_held_signals(at_end=True)
                return
            self._log_held_signals()

    def _log_held_signals(self, at_end: bool = False) -> None:
        """The signals whose lines were held back (`FIRED_LOG_EVERY`), counted in a line of their own once the
        second has passed with no signal line to count them, and at the end: before, they waited for the next
        signal line, and when none came (one trace firing two rules) were never said. Likewise the windows
        whose "open windows hold" lines were held back (`FULL_LOG_EVERY`)."""
        self._fired.log_held(at_end)
        self._full.log_held(at_end)

    def _let_go_of_requests(self, batch: Sequence[Completed]) -> None:
        """Spans still sharing their request's bytes get bytes of their own, when the rules would read past
        what was converted ahead (a rule set that took over from one that did not, or windows reading
        the first segment of a dotted key, or holding spans whole).

        All the batch's spans at once: the spans of a request may be spread over many traces, and a read
        of a shared span decodes its whole request (8 kept), so reading them trace by trace would decode
        each request once per trace instead of once per batch.
        """
        program, keys = self.program, self._window_keys
        reads_past = not program.prefetch_complete
        if self.windows and not reads_past:
            reads_past = keys is None or not keys <= frozenset(program.prefetch)
        if reads_past:
            detach_spans([s for c in batch for s in c.spans])

    def _evaluate_traces(self, batch: Sequence[Completed]) -> None:
        program = self.program
        metrics = self.metrics
        rules = len(program.trace_rules)
        windowed = list(self.windows.values())
        keys = self._window_keys
        signals: list[Signal] = []
        now = time.monotonic()
        clock = time.perf_counter
        latencies: list[float] = []
        took = latencies.append
        late = duplicates = left_traces = left_spans = 0
        for c in batch:
            trace = Trace(c.trace_id, c.spans)
            duplicates += trace.duplicates
            t0 = clock()
            signals.extend(program.evaluate_trace(trace))
            took(clock() - t0)
            if not windowed:
                continue
            held = trace
            if keys is not None:  # held for a window's length: only what the windowed rules can read
                held = slim_trace(trace, keys)
            else:  # held for a window's length: let go of the requests the spans came in
                detach_spans(trace.spans)
            n = len(held.spans)
            for ws in windowed:
                if self._held_spans(windowed) + n <= self.max_window_spans:
                    placed = ws.add(held, now)
                else:
                    placed = ws.leave_out(held, now)
                    if placed and n:
                        left_traces += 1
                        left_spans += n
                        self._log_full(ws, held)
                if not placed:
                    late += 1
        metrics.eval_latency.observe_all(latencies)
        metrics.traces_evaluated.inc(len(batch))
        metrics.rule_evaluations.inc(rules * len(batch))
        if late:
            metrics.window_late_traces.inc(late)
        for ws in windowed:
            if len(ws.open) > MAX_OPEN_WINDOWS:
                self._close_oldest(ws)
        if left_traces:
            metrics.window_traces_left_out.inc(left_traces)
            metrics.window_spans_left_out.inc(left_spans)
        if duplicates:
            metrics.spans_duplicate.inc(duplicates)
        self._report_errors()
        if signals:
            self._count((s.rule, s.severity) for s in signals)
            self._emit(signals)

    @staticmethod
    def _held_spans(windowed: Sequence[WindowSet]) -> int:
        total = 0
        for ws in windowed:
            total += ws.spans
        return total

    def _close_oldest(self, ws: WindowSet) -> None:
        if ws.length not in self._crowded:
            self._crowded.add(ws.length)
            log.warning(
                "%s open windows of %s (traces timed to a window each): from now on the window open longest "
                "closes when another opens, its signals partial (closed_early) when before its end plus the grace",
                f"{MAX_OPEN_WINDOWS:,}", format_duration(ws.length),
            )  # fmt: skip
        self._evaluate_windows(ws, ws.close_oldest(MAX_OPEN_WINDOWS, time.time_ns(), self.grace))

    FULL_LOG_EVERY = 10.0
    """At most one "open windows hold N spans" line every 10 s: a sender choosing its span times can put each
    trace in a window of its own, one line each; the windows held back are counted in the next line."""

    def _log_full(self, ws: WindowSet, trace: Trace) -> None:
        key = (ws.length, trace.end // ws.length)
        if key in self._full_logged:
            return
        if len(self._full_logged) > MAX_CLOSED_REMEMBERED:
            self._full_logged.clear()
        self._full_logged.add(key)
        self._full(
            "window %s +%s: open windows hold %d spans (--max-window-spans); later traces of it are counted, "
            "not held, and its signals will be partial",
            format_timestamp(key[1] * ws.length),
            format_duration(ws.length),
            self.max_window_spans,
        )

    def _evaluate_windows(self, ws: WindowSet, windows: Sequence[Window]) -> None:
        if not windows:
            return
        try:
            self._evaluate_windows_unguarded(ws, windows)
        except Exception:  # a FLUO bug: log it, keep evaluating
            log.exception("internal error evaluating %d window(s); they produced no signals", len(windows))
            self.metrics.rule_errors.labels(ANY_RULE).inc(len(windows))

    def _evaluate_windows_unguarded(self, ws: WindowSet, windows: Sequence[Window]) -> None:
        rules = [r for r in self.program.window_rules if r.ir.window_ns == ws.length]
        out: list[dict[str, Any]] = []
        for w in windows:
            signals = self.program.evaluate_window(w, rules)
            self.metrics.rule_evaluations.inc(len(rules))
            note = ws.note(w)
            if note is not None and note.traces_left_out:
                signals.append(self._left_out_signal(w, note, rules))
            found = [s.to_json() for s in signals]
            self._mark_partial(ws, w, note, found)
            out.extend(found)
        self.metrics.windows_closed.inc(len(windows))
        self._report_errors()
        if out:
            self._count((s["rule"], s["severity"]) for s in out)
            self._emit(out)

    def _left_out_signal(self, w: Window, note: WindowNote, rules: Sequence[CompiledRule]) -> Signal:
        observed = {
            "traces_left_out": note.traces_left_out,
            "spans_left_out": note.spans_left_out,
            "max_window_spans": self.max_window_spans,
            "rules": [r.id for r in rules],
        }
        message = (
            f"{note.traces_left_out:,} traces ({note.spans_left_out:,} spans) of this "
            f"{format_duration(w.end - w.start)} window were counted but not held: open windows reached "
            f"--max-window-spans {self.max_window_spans:,}; its windowed rules saw only the rest"
        )
        start, end = format_timestamp(w.start), format_timestamp(w.end)
        return Signal(TRUNCATED_RULE, "warning", message, None, [], observed, end, start, end)

    def _mark_partial(self, ws: WindowSet, w: Window, note: WindowNote | None, found: list[dict[str, Any]]) -> None:
        """Mark the signals of a window serve did not see whole: `partial`, why, and the time it observed.

        `attributes_not_held` marks only the signals of the rules reading attributes its traces
        were held without (a reload made the rules read more): the other rules saw them whole.
        """
        note = note or WindowNote()
        reasons: list[str] = []
        observed_start = w.start
        if ws.start_ns is not None and w.start < ws.start_ns:
            reasons.append("started_before_serve")
            observed_start = min(ws.start_ns, w.end)
        if note.closed_early_ns is not None:
            reasons.append("closed_early")
        if note.reopened_ns is not None:
            reasons.append("reopened")
            observed_start = max(observed_start, min(note.reopened_ns, w.end))
        if note.forgotten_ns is not None:
            reasons.append("early_forgotten")
            observed_start = max(observed_start, min(note.forgotten_ns, w.end))
        if note.traces_left_out:
            reasons.append("window_span_limit")
        unread: set[str] = set()  # the rules reading attributes its traces were held without
        if note.keys_held is not None:
            held = note.keys_held
            for r in self.program.window_rules:
                keys = window_attribute_keys([r])
                if r.ir.window_ns == ws.length and (keys is None or not keys <= held):
                    unread.add(r.id)
        observed_end = w.end if note.closed_early_ns is None else min(note.closed_early_ns, w.end)
        for s in found:
            mine, start = reasons, observed_start
            if s["rule"] in unread:
                mine, start = [*reasons, "attributes_not_held"], max(start, min(note.keys_since_ns, w.end))
            if mine:
                s["partial"] = True
                s["partial_reasons"] = mine
                s["observed_start"] = format_timestamp(start)
                s["observed_end"] = format_timestamp(max(observed_end, start))

    def _report_errors(self) -> None:
        errors = self.program.errors
        for e in errors[self._reported_errors :]:
            self.metrics.rule_errors.labels(e.rule).inc()
            where = f"trace {e.trace_id}" if e.trace_id else "a window"
            log.error("internal error evaluating rule %s on %s: %s", e.rule, where, e.message)
        if len(errors) > 1000:
            del errors[:]
        self._reported_errors = len(errors)

    def _count(self, keys: Iterable[tuple[str, str]]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        for (rule, severity), n in counts.items():
            self.metrics.signals.labels(rule, severity).inc(n)

    FIRED_LOG_EVERY = 1.0
    """At most one "signal fired" log line a second: the rest are counted in the next one, or, when none comes
    within the second, in a line of their own (`_log_held_signals`)."""

    def _emit(self, signals: Sequence[Signal] | Sequence[dict[str, Any]]) -> None:
        if self.aborted:  # stopped now: nothing more goes out, and that is counted
            self.lost_signals += len(signals)
            return
        for s in signals:
            if isinstance(s, Signal):
                rule, severity, trace_id, start, end = s.rule, s.severity, s.trace_id, s.window_start, s.window_end
            else:
                rule, severity, trace_id = s["rule"], s["severity"], s.get("trace_id")
                start, end = s.get("window_start"), s.get("window_end")
            if trace_id:
                self._fired("signal %s (%s) on trace %s", rule, severity, trace_id)
            else:
                self._fired("signal %s (%s) on the window %s to %s", rule, severity, start, end)
        if self.publish is not None:  # None: no sink, so nobody reads the JSON
            self.publish([s.to_json() if isinstance(s, Signal) else s for s in signals])
