"""What every fake provider is built from: the request as it arrived, the answer it gives, the
base class the dispatcher drives, and the number and calendar rules the providers share."""

from __future__ import annotations

import json
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

# Annotations only, here and in every provider module: faults takes its operations from the
# registry, which imports the provider modules.
if TYPE_CHECKING:
    from local.sandbox.faults import Fault
    from local.sandbox.inbox import Sent
    from local.sandbox.state import State

# China has had no daylight saving time since 1991, so a fixed offset is Asia/Shanghai exactly.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

MAINLAND = re.compile(r"1[3-9]\d{9}")
# Eleven digits starting 10, 11 or 12 look mainland but are not; they are refused everywhere.
NOT_MAINLAND = re.compile(r"1[0-2]\d{9}")


@dataclass
class Incoming:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    at: datetime

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json_body(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.raw_body.decode("utf-8"))

    def json_body_or_none(self) -> Any:
        try:
            return self.json_body()
        except ValueError:
            return None


@dataclass
class Reply:
    status: int
    payload: Any
    outcome: str
    code: str | None = None
    accepted: list[str] = field(default_factory=list)


class Provider(ABC):
    """One impersonated provider. The dispatcher calls `handle` with the sandbox's lock held, so a
    provider's own memory (daily counts, nonces, request ids) needs no lock of its own."""

    # Its name (the port of its own, `down?provider=`), and the operations it answers, as faults
    # and recorded calls name them.
    NAME: ClassVar[str]
    OPERATIONS: ClassVar[tuple[str, ...]]

    def __init__(self, state: State) -> None:
        self.state = state

    @abstractmethod
    def operation(self, incoming: Incoming) -> str | None:
        """The operation this request calls, or None when its path is not this provider's."""

    @abstractmethod
    def phones(self, incoming: Incoming) -> list[str]:
        """The numbers the request sends to, as far as they can be read; faults match on them."""

    def recorded_body(self, incoming: Incoming) -> Any:
        """The body as a recorded call shows it."""
        return incoming.json_body_or_none()

    @abstractmethod
    def fault_reply(self, fault: Fault) -> Reply:
        """The provider's own error answer for an `http_status` fault."""

    @abstractmethod
    def handle(self, incoming: Incoming, phones: list[str]) -> Reply:
        """Check the request as the provider does, then answer it (or a `code` fault in its place)."""

    @abstractmethod
    def forget(self) -> None:
        """Drop what the provider remembers from earlier calls."""

    @abstractmethod
    def sent(self, incoming: Incoming, reply: Reply) -> list[Sent]:
        """The messages an accepted call sent, one per accepted number, for the inbox."""


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def digits_id(length: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(length - 1))
