"""The records of one SQS batch, gathered at their DynamoDB rounds.

The records of a batch are processed in threads of their own, each as the API would send it. Where
each would make the same kind of DynamoDB call (its claim with its quota take; its completion with
its message-log record), the calls are gathered and made as one for the batch: a `Gathering` waits
until every record of the batch still on its way has arrived (or has ended without coming), or for
a short while at most, then makes the gathered call once and hands each record its own part of the
answer. Each record still gets what its call alone would have got: what one record is refused, or
fails on, is that record's alone, so a batch's partial failures stay exact.

Outside a batch (the API), `current()` is None and every call is made on its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

LINGER_SECONDS = 0.02
"""How long a gathered call waits for the batch's records still on their way after the last one
came: while they keep coming, it waits on (up to `MAX_WAIT_SECONDS`)."""
MAX_WAIT_SECONDS = 0.15

Run = Callable[[list[Any]], Sequence[Any]]
"""Makes a gathered call: a result, or the exception to raise, for each item, in order."""

_MEMBER: contextvars.ContextVar[Member | None] = contextvars.ContextVar("batch_member", default=None)


def current() -> Member | None:
    """The batch record this thread works for, if any."""
    return _MEMBER.get()


class Gathering:
    """One kind of call from the members of a batch, made together."""

    def __init__(self, run: Run, due: int, linger: float) -> None:
        self.run = run
        self.due = due
        """Members that may still come: neither arrived nor ended."""
        self.linger = linger
        self._waiting: list[tuple[Any, Future[Any]]] = []
        self._first_at = self._last_at = 0.0
        self._condition = threading.Condition()

    def join(self, item: Any) -> Any:
        future: Future[Any] = Future()
        with self._condition:
            self._last_at = time.monotonic()
            if not self._waiting:
                self._first_at = self._last_at
            self._waiting.append((item, future))
            self.due -= 1
            self._condition.notify_all()
            gathered = self._wait(future)
        if gathered:
            self._make(gathered)
        return future.result()

    def leave(self) -> None:
        """A member that ended without coming: the others wait for it no longer."""
        with self._condition:
            self.due -= 1
            self._condition.notify_all()

    def _wait(self, future: Future[Any]) -> list[tuple[Any, Future[Any]]]:
        """Until this call is made by another member, or it is this member's turn to make it."""
        while not future.done():
            now = time.monotonic()
            left = min(self._last_at + self.linger, self._first_at + MAX_WAIT_SECONDS) - now
            if self._waiting and (self.due <= 0 or left <= 0):
                gathered, self._waiting = self._waiting, []
                return gathered
            self._condition.wait(timeout=max(left, 0.001) if self._waiting else None)
        return []

    def _make(self, gathered: list[tuple[Any, Future[Any]]]) -> None:
        try:
            results = list(self.run([item for item, _ in gathered]))
        except BaseException as exc:  # every member fails as its own call would have
            results = [exc] * len(gathered)
        for (_, future), result in zip(gathered, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        with self._condition:
            self._condition.notify_all()


class Batch:
    """The members (records) of one batch, and the gatherings they meet at."""

    def __init__(self, size: int, linger: float | None = None) -> None:
        """`size`: the records of the batch. Each is waited for until it has come or ended (records
        beyond the worker threads start as others end: for them, the linger)."""
        self.linger = LINGER_SECONDS if linger is None else linger
        self._remaining = size
        self._gatherings: dict[str, Gathering] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def member(self) -> Iterator[Member]:
        """Work for one record: its gathered calls meet the other records'; once it ends, they wait for it no longer."""
        member = Member(self)
        token = _MEMBER.set(member)
        try:
            yield member
        finally:
            _MEMBER.reset(token)
            self._end(member)

    def gathering(self, name: str, run: Run) -> Gathering:
        with self._lock:
            if name not in self._gatherings:
                self._gatherings[name] = Gathering(run, self._remaining, self.linger)
            return self._gatherings[name]

    def _end(self, member: Member) -> None:
        with self._lock:
            self._remaining -= 1
            missed = [g for name, g in self._gatherings.items() if name not in member.joined]
        for gathering in missed:
            gathering.leave()


class Member:
    """One record's work in a batch."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.joined: set[str] = set()

    def gather(self, name: str, run: Run, item: Any) -> Any:
        """`run([item])[0]`, made together with the other members' calls of the same name. A member
        meets each gathering once: a second call of the same name is made on its own."""
        if name in self.joined:
            (result,) = run([item])
            if isinstance(result, BaseException):
                raise result
            return result
        self.joined.add(name)
        return self.batch.gathering(name, run).join(item)
