"""Lanes: how many requests may do one kind of work at once, and how many may wait for it.

Why: Gradio queues by event, and ``/search`` is one event whether or not it re-ranks, so two
requests re-ranking at the input limits (seconds of CPU each) held both of its workers and an
ordinary search waited behind them (issue 23 item 4). The search events now have more Gradio
workers than the cores (``Limits.search_concurrency``), and inside them the work itself goes
through two lanes: the contrastive search (``AppState.search_lane``, as many at once as there
are cores) and fusion re-ranking (``AppState.rerank_lane``, one at a time, a few waiting, more
refused at once with a message). A request waiting for the re-ranking lane holds a Gradio
worker but no core and never the search lane, so ordinary searches keep theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class LaneFull(RuntimeError):
    """The lane is busy and its waiting room is full: the message says so, for the user."""


class Lane:
    """At most ``slots`` holders at once; up to ``max_waiting`` more wait (None: any number), in
    arrival order; a request beyond that is refused with ``LaneFull`` instead of waiting."""

    def __init__(self, name: str, slots: int, max_waiting: int | None = None):
        if slots < 1 or (max_waiting is not None and max_waiting < 0):
            raise ValueError(f"lane {name!r}: slots must be >= 1 and max_waiting >= 0, got {slots}, {max_waiting}")
        self.name, self.slots, self.max_waiting = name, slots, max_waiting
        self._cond = threading.Condition()
        self._inside = 0
        self._queue: list[object] = []  # waiting tickets, first come first served

    @property
    def inside(self) -> int:
        return self._inside

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @contextmanager
    def enter(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block, waiting for one if needed; LaneFull when even the
        waiting room is full."""
        with self._cond:
            if self._inside >= self.slots and self.max_waiting is not None and len(self._queue) >= self.max_waiting:
                raise LaneFull(f"{self.name} is busy: {self._inside} request(s) at it and {len(self._queue)} "
                               "waiting, the most this server queues; try again in a moment")
            ticket = object()
            self._queue.append(ticket)
            try:
                while self._inside >= self.slots or self._queue[0] is not ticket:
                    self._cond.wait()
            finally:
                self._queue.remove(ticket)
            self._inside += 1
            self._cond.notify_all()  # the next in line may have a free slot too
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()
