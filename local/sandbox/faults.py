"""Faults the sandbox injects into provider calls, per call or per phone number.

Kinds, and where in the handling of a call they strike:

- `timeout`, `reset`, `http_status`, `garbled`: before the request is authenticated, the way a
  broken network or a failing provider front end would; the call is recorded, nothing is accepted.
  `timeout` waits `delay` seconds (default 30) and closes without answering; `reset` aborts the
  connection with an RST; `http_status` answers `status` with the provider's own error body
  (`code` picks the provider code in it); `garbled` answers HTTP 200 with a body that is not JSON.
- `code`: after the request passed every check, in place of the success answer. For Polyv the
  code is a per-number status (-1, -2, 11, 12, …) and, with `phone` set, only that number's status
  changes; for Aliyun it is the `Code` string, for Ronglian the `statusCode` string.
- `slow`: the call is handled (and possibly accepted) at once, the answer goes out `delay` seconds
  later (default 1): a client that gives up first has a message out that it cannot know about.

`phone` set: the fault only strikes calls that carry that exact number (no normalisation, so
`8613800138000` and `13800138000` are different numbers). `times` set: it strikes that many calls,
then disappears. The first matching fault of a kind wins.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from local.sandbox.registry import OPERATIONS

FaultKind = Literal["http_status", "code", "timeout", "reset", "garbled", "slow"]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

DEFAULT_TIMEOUT_DELAY = 30.0
DEFAULT_SLOW_DELAY = 1.0

# The kinds that replace the whole exchange before the provider logic runs.
TRANSPORT_KINDS: frozenset[str] = frozenset({"http_status", "timeout", "reset", "garbled"})


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    operation: str | None = None
    phone: str | None = None
    times: int | None = None
    status: int = 500
    code: str | int | None = None
    delay: float | None = None

    def __post_init__(self) -> None:
        # Faults also arrive as JSON over the control API, so every field is checked at run time.
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}, not {self.kind!r}")
        if self.operation is not None and self.operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {list(OPERATIONS)} or null, not {self.operation!r}")
        if self.phone is not None and (not isinstance(self.phone, str) or not self.phone):
            raise ValueError("phone must be a non-empty string or null")
        if self.times is not None and (not _is_int(self.times) or self.times < 1):
            raise ValueError("times must be a positive integer or null")
        if not _is_int(self.status) or not 200 <= self.status <= 599:
            raise ValueError("status must be an integer HTTP status from 200 to 599")
        if self.code is not None and not (_is_int(self.code) or (isinstance(self.code, str) and self.code)):
            raise ValueError("code must be a non-empty string, an integer or null")
        if self.kind == "code" and self.code is None:
            raise ValueError("a 'code' fault needs a code")
        if self.kind == "code" and self.operation == "polyv.send" and self.polyv_status is None:
            raise ValueError("a Polyv 'code' fault needs an integer per-number status, such as -1, -2 or 11")
        if self.delay is not None and (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, int | float)
            or not math.isfinite(self.delay)
            or self.delay < 0
        ):
            raise ValueError("delay must be a non-negative number of seconds or null")

    @property
    def wait(self) -> float:
        """Seconds a `timeout` or `slow` fault holds the connection."""
        if self.delay is not None:
            return float(self.delay)
        return DEFAULT_TIMEOUT_DELAY if self.kind == "timeout" else DEFAULT_SLOW_DELAY if self.kind == "slow" else 0.0

    @property
    def polyv_status(self) -> int | None:
        """The code as a Polyv integer status, if it reads as one."""
        if _is_int(self.code):
            return int(self.code)  # type: ignore[arg-type]
        if isinstance(self.code, str):
            try:
                return int(self.code)
            except ValueError:
                return None
        return None

    def matches(self, operation: str, phones: Sequence[str]) -> bool:
        if self.operation is not None and self.operation != operation:
            return False
        return self.phone is None or self.phone in phones

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        if not isinstance(data, Mapping):
            raise ValueError("a fault is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields: {unknown}")
        if "kind" not in data:
            raise ValueError("a fault needs a kind")
        return cls(**data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Entry:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times


class FaultBook:
    """The active faults, consumed as they strike. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._entries.append(_Entry(fault))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [e.fault for e in self._entries]

    def take(self, operation: str, phones: Sequence[str], kinds: frozenset[str]) -> Fault | None:
        """The first fault of one of `kinds` that strikes this call, counted as used."""
        with self._lock:
            for entry in self._entries:
                if entry.fault.kind in kinds and entry.fault.matches(operation, phones):
                    self._use(entry)
                    return entry.fault
            return None

    def take_per_number(
        self, operation: str, phones: Sequence[str], usable: Callable[[Fault], bool]
    ) -> list[Fault | None]:
        """For each number, the first `code` fault that strikes it; each fault used counts once per call."""
        with self._lock:
            chosen: list[Fault | None] = []
            used: list[_Entry] = []
            for phone in phones:
                hit: _Entry | None = None
                for entry in self._entries:
                    fault = entry.fault
                    if (
                        fault.kind == "code"
                        and usable(fault)
                        and (fault.operation is None or fault.operation == operation)
                        and (fault.phone is None or fault.phone == phone)
                    ):
                        hit = entry
                        break
                chosen.append(hit.fault if hit else None)
                if hit is not None and all(hit is not u for u in used):
                    used.append(hit)
            for entry in used:
                self._use(entry)
            return chosen

    def _use(self, entry: _Entry) -> None:
        if entry.remaining is None:
            return
        entry.remaining -= 1
        if entry.remaining <= 0:
            self._entries.remove(entry)
