"""Trace assembly: spans grouped by trace id until the trace is complete.

A trace is complete when no span has arrived for `trace_idle` seconds, when it
is `max_trace_age` seconds old (since its first span arrived), when it holds
`max_spans_per_trace` spans, or when the buffer as a whole holds more than
`max_buffered_spans` spans or `max_buffered_bytes` bytes (the oldest traces go
first; a trace of more bytes than that on its own is evaluated at once). The
last two are evictions: the trace is evaluated with what it has and counted.

A span's bytes are the wire bytes it keeps alive (`span_bytes`): its share of its
request's bytes while it shares them, its own serialized bytes once detached.

A span that arrives for a trace already completed (remembered for
`late_span_memory` seconds, at most `max_remembered` ids: see `RememberedIds`)
is a late span: it is counted and dropped, so a signal once emitted is never
revised and a fragment never fires on its own. After that memory lapses, spans
with the same trace id form a new trace.

Spans arrive either with bytes of their own (`detach_spans`) or sharing their
request's wire bytes (`share_request`, the receivers' fast path: nothing to
serialize). A shared request lives as long as any of its spans, so a trace still
open `share_for` seconds after its first span gets bytes of its own for its
spans, and so does a span joining such a trace: requests are kept for about that
long, whatever the traces' lifetimes.

The buffer is used from one thread (the receivers' event loop).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from fluo_lang.otlp import detach_spans, request_share, span_bytes
from fluo_lang.trace import Span

from .config import DEFAULT_MAX_BUFFER_BYTES

MAX_REMEMBERED = 1_000_000
"""The most ids of completed traces remembered for late spans, whatever `late_span_memory` says: about 110 MB.

Under steady load the remembered ids are the trace rate times `late_span_memory`
(5 minutes by default): this cap binds from about 3,300 traces a second.
"""
EVICTIONS = ("trace_span_cap", "buffer_full")  # the completion reasons that are evictions
COMPLETIONS = ("idle", "max_age", *EVICTIONS, "shutdown")  # every reason a trace is completed for


class OpenTrace:
    __slots__ = ("first_seen", "last_seen", "size", "spans", "trace_id")

    def __init__(self, trace_id: bytes, now: float) -> None:
        self.trace_id = trace_id
        self.spans: list[Span] = []
        self.size = 0  # the bytes its spans keep alive (`span_bytes`), as counted in `TraceBuffer.bytes`
        self.first_seen = now
        self.last_seen = now


class RememberedIds:
    """Ids of completed traces, each remembered from its completion until `forget` lets it go.

    One set answers whether an id is remembered; the ids also sit in batches, one per
    `forget` call that stamped them (oldest first), and are forgotten a batch at a time.
    About 115 bytes an id, its 16-byte id object included (an OrderedDict of completion
    times took 180): under steady load this is most of what `fluo serve` holds per trace
    once the trace is evaluated.
    """

    __slots__ = ("_batches", "_fresh", "ids")

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self._fresh: list[bytes] = []  # remembered since the last `forget`, not stamped yet
        self._batches: deque[tuple[float, list[bytes]]] = deque()  # (stamp, ids), oldest first

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, trace_id: bytes) -> bool:
        return trace_id in self.ids

    def add(self, trace_id: bytes) -> None:
        """Remember an id that is not remembered now (an id is never in two batches)."""
        self.ids.add(trace_id)
        self._fresh.append(trace_id)

    def stamped(self, now: float) -> list[tuple[float, list[bytes]]]:
        """Every remembered id in batches with their stamps, oldest first; those not stamped yet with `now`."""
        out = list(self._batches)
        if self._fresh:
            out.append((now, list(self._fresh)))
        return out

    def restore(self, batches: list[tuple[float, list[bytes]]]) -> None:
        """Remember ids of a previous run (`state.load_remembered`), stamped before any remembered now."""
        older: deque[tuple[float, list[bytes]]] = deque()
        for stamp, ids in batches:
            new = [i for i in ids if i not in self.ids]
            self.ids.update(new)
            older.append((stamp, new))
        older.extend(self._batches)
        self._batches = older

    def forget(self, now: float, before: float, limit: int) -> None:
        """Stamp the ids remembered since the last call with `now`, then forget those stamped at or
        before `before`, and the oldest batches while more than `limit` ids are remembered."""
        if self._fresh:
            self._batches.append((now, self._fresh))
            self._fresh = []
        batches, ids = self._batches, self.ids
        while batches and (batches[0][0] <= before or len(ids) > limit):
            ids.difference_update(batches.popleft()[1])


@dataclass
class Completed:
    """A trace ready for evaluation and why it was completed (`idle`, `max_age`, an eviction, `shutdown`)."""

    trace_id: bytes
    spans: list[Span]
    reason: str

    @property
    def evicted(self) -> bool:
        return self.reason in EVICTIONS


class TraceBuffer:
    def __init__(
        self,
        *,
        trace_idle: float,
        max_trace_age: float,
        max_spans_per_trace: int,
        max_buffered_spans: int,
        late_span_memory: float,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        max_remembered: int = MAX_REMEMBERED,
    ) -> None:
        self.trace_idle = trace_idle
        self.max_trace_age = max_trace_age
        self.max_spans_per_trace = max_spans_per_trace
        self.max_buffered_spans = max_buffered_spans
        self.max_buffered_bytes = max_buffered_bytes
        self.late_span_memory = late_span_memory
        self.max_remembered = max_remembered
        self.share_for = max(2 * trace_idle, 1.0)
        """Seconds a trace's spans may keep their requests' bytes alive (see the module doc)."""
        self._sharing: deque[tuple[float, bytes]] = deque()  # (first arrival, trace id) in that order
        self.by_activity: OrderedDict[bytes, OpenTrace] = OrderedDict()  # least recently touched first
        self.by_age: dict[bytes, OpenTrace] = {}  # oldest first (insertion order)
        self.done = RememberedIds()  # completed trace ids
        self.spans = 0
        self.bytes = 0  # the bytes buffered spans keep alive: the sum of the open traces' `size`
        self.late = 0

    def __len__(self) -> int:
        return len(self.by_age)

    def add(self, spans: list[Span], now: float) -> list[Completed]:
        """Buffer spans; the traces that their arrival completed (caps reached)."""
        detach_spans(spans, shared_too=False)
        share = request_share(spans)  # one request's spans, the usual case: no need to look at each span
        groups: dict[bytes, list[Span]] = {}
        previous: bytes | None = None
        group: list[Span] = []
        shared = b""  # the trace id object every span of the group keeps: one per trace, not per span
        for s in spans:
            tid = s.trace_id
            if tid == previous:  # exporters mostly send a trace's spans together: no lookup for those
                s.trace_id = shared
                group.append(s)
            else:
                previous = tid
                found = groups.get(tid)
                if found is None:
                    groups[tid] = group = [s]
                    shared = tid
                else:
                    group = found
                    shared = s.trace_id = group[0].trace_id
                    group.append(s)
        out: list[Completed] = []
        by_activity, by_age, done = self.by_activity, self.by_age, self.done.ids
        cap = self.max_spans_per_trace
        detach: list[Span] = []  # joining traces open past `share_for`: detached together, each request decoded once
        resize: list[OpenTrace] = []  # the traces those spans joined: counted again once detached
        added = 0  # bytes
        for tid, group in groups.items():
            ot = by_age.get(tid)
            if ot is None:
                if tid in done:
                    self.late += len(group)
                    continue
                ot = OpenTrace(tid, now)
                by_age[tid] = ot
                by_activity[tid] = ot
                self._sharing.append((now, tid))
            else:
                ot.last_seen = now
                by_activity.move_to_end(tid)
                if now - ot.first_seen >= self.share_for:  # its spans have bytes of their own (see the module doc)
                    detach.extend(group)
                    resize.append(ot)
            room = cap - len(ot.spans)
            if len(group) >= room:
                self.late += len(group) - room
                group = group[:room]
            size = share * len(group) if share is not None else span_bytes(group)
            ot.size += size
            added += size
            ot.spans.extend(group)
            self.spans += len(group)
            if len(ot.spans) >= cap:
                out.append(self._complete(ot, "trace_span_cap", now))
        self.bytes += added
        if detach:
            detach_spans(detach)
            for ot in resize:
                self._resize(ot)
        if self.bytes > self.max_buffered_bytes:
            for tid in groups:  # a trace of more bytes than the whole buffer may hold is evaluated now, alone
                ot = by_age.get(tid)
                if ot is not None and ot.size > self.max_buffered_bytes:
                    out.append(self._complete(ot, "buffer_full", now))
        while (self.spans > self.max_buffered_spans or self.bytes > self.max_buffered_bytes) and by_age:
            oldest = by_age[next(iter(by_age))]
            out.append(self._complete(oldest, "buffer_full", now))
        return out

    def _resize(self, ot: OpenTrace) -> None:
        """Count a trace's bytes again, its spans detached (their own bytes, no longer a share of a request's)."""
        if self.by_age.get(ot.trace_id) is ot:  # still open
            size = span_bytes(ot.spans)
            self.bytes += size - ot.size
            ot.size = size

    def _complete(self, ot: OpenTrace, reason: str, now: float) -> Completed:
        del self.by_age[ot.trace_id]
        del self.by_activity[ot.trace_id]
        self.spans -= len(ot.spans)
        self.bytes -= ot.size
        self.done.add(ot.trace_id)
        return Completed(ot.trace_id, ot.spans, reason)

    def sweep(self, now: float) -> list[Completed]:
        """Traces idle or old enough to evaluate, and forget completed ids past the late-span memory."""
        out: list[Completed] = []
        idle_before = now - self.trace_idle
        while self.by_activity:
            ot = next(iter(self.by_activity.values()))
            if ot.last_seen > idle_before:
                break
            out.append(self._complete(ot, "idle", now))
        old_before = now - self.max_trace_age
        while self.by_age:
            ot = next(iter(self.by_age.values()))
            if ot.first_seen > old_before:
                break
            out.append(self._complete(ot, "max_age", now))
        self._detach_long_open(now)
        self.done.forget(now, now - self.late_span_memory, self.max_remembered)
        return out

    def _detach_long_open(self, now: float) -> None:
        """Spans of traces open past `share_for` get bytes of their own, so their requests can go.

        All of them in one `detach_spans` call: the spans of one request may be spread over
        many traces, and each request is then decoded once per sweep, not once per trace.
        """
        sharing = self._sharing
        share_before = now - self.share_for
        detach: list[Span] = []
        resize: list[OpenTrace] = []
        while sharing and sharing[0][0] <= share_before:
            first_seen, tid = sharing.popleft()
            ot = self.by_age.get(tid)
            if ot is not None and ot.first_seen == first_seen:  # still open (not a later trace with that id)
                detach.extend(ot.spans)
                resize.append(ot)
        if detach:
            detach_spans(detach)
            for ot in resize:
                self._resize(ot)

    def drain(self) -> list[Completed]:
        """Every open trace, for shutdown."""
        return [self._complete(ot, "shutdown", 0.0) for ot in list(self.by_age.values())]
