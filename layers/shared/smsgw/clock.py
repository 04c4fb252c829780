"""Time: the wall clock as a dependency, and the time budget of one request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment on this process's monotonic clock by which something must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def allows(self, seconds: float) -> bool:
        """Whether `seconds` of work started now would end in time."""
        return self.remaining() >= seconds

    def earliest(self, other: Deadline) -> Deadline:
        return self if self.at <= other.at else other

    def epoch_seconds(self) -> int:
        """The same moment on the wall clock, for records that other instances read."""
        return int(time.time() + self.remaining()) + 1


@dataclass(frozen=True, slots=True)
class Budget:
    """A request's time: `send_by` bounds what comes before the provider call (quotas, records),
    so that a hung dependency is answered 503 with nothing sent; `done_by` is when the answer is
    given, the provider call and the records included, well before API Gateway gives up (29 s)."""

    send_by: Deadline
    done_by: Deadline

    @classmethod
    def of(cls, *, send_within: float, done_within: float, remaining: float | None = None) -> Budget:
        """A budget starting now; `remaining` is what the invocation has left (Lambda's clock)."""
        done = done_within if remaining is None else max(min(done_within, remaining - 1.0), 0.0)
        return cls(send_by=Deadline.after(min(send_within, done)), done_by=Deadline.after(done))
