"""What the sandbox records and is told: the calls as they reached it, the numbers it accepted,
the faults it injects, and the clock it reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.sandbox.accounts import SandboxAccounts
from local.sandbox.faults import FaultBook
from local.sandbox.inbox import Inbox

if TYPE_CHECKING:
    from local.sandbox.provider import Incoming

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RecordedCall:
    operation: str
    phones: list[str]
    params: dict[str, str]
    body: Any
    headers: dict[str, str]
    outcome: str
    accepted_phones: list[str]
    at: datetime
    # The HTTP status answered, None when the sandbox closed the connection instead.
    status: int | None = None
    # The provider code answered (Polyv error code, Aliyun `Code`, Ronglian `statusCode`).
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "phones": list(self.phones),
            "params": dict(self.params),
            "body": self.body,
            "headers": dict(self.headers),
            "outcome": self.outcome,
            "accepted_phones": list(self.accepted_phones),
            "at": self.at.isoformat(),
            "status": self.status,
            "code": self.code,
        }


class State:
    """Shared by the dispatcher, the providers and the control API; `lock` guards all of it, and
    the providers' own memory too."""

    def __init__(self, accounts: SandboxAccounts, clock: Clock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.calls: list[RecordedCall] = []
        self.accepted: list[str] = []
        self.inbox = Inbox(self.lock)
        # Replaced on every start, so handlers asleep in a fault wake up when the sandbox stops.
        self.stopping = threading.Event()

    def now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the sandbox clock must return an aware datetime")
        return moment.astimezone(UTC)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.calls.clear()
            self.accepted.clear()
            self.inbox.clear()

    def record(self, incoming: Incoming, operation: str, phones: list[str], body: Any, **answer: Any) -> None:
        call = RecordedCall(
            operation=operation,
            phones=list(phones),
            params=incoming.params,
            body=body,
            headers=dict(incoming.headers),
            at=incoming.at,
            **answer,
        )
        with self.lock:
            self.calls.append(call)
            self.accepted.extend(call.accepted_phones)
