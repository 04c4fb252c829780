"""What happened to each phone number of a send."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Per-number outcome of a send, as far as the gateway can know it."""

    ACCEPTED = "accepted"
    """The provider queued the message (acceptance is never delivery)."""
    REJECTED = "rejected"
    """The provider refused the message for good; resending the same request cannot help."""
    RATE_LIMITED = "rate_limited"
    """The provider refused it because of a frequency limit; not sent, may be retried later."""
    RETRYABLE = "retryable"
    """Provably not sent (connection refused, 5xx before acceptance, throttling): safe to resend."""
    AMBIGUOUS = "ambiguous"
    """The request may have reached the provider (read timeout, reset after sending)."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """Not sent: the gateway's own quota for the number, the account or the source IP is used up."""


NOT_SENT = frozenset({Status.REJECTED, Status.RATE_LIMITED, Status.RETRYABLE, Status.QUOTA_EXCEEDED})
"""Outcomes where the provider definitely did not send: their quota units are given back."""


FAILOVER = frozenset({Status.REJECTED, Status.RATE_LIMITED, Status.RETRYABLE})
"""Provably unsent by the provider that answered: another may try, unless the refusal is `final`."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider's try at a number, on the unified route."""

    provider: str
    operation: str
    status: Status
    provider_code: str | None


@dataclass(frozen=True, slots=True)
class NumberOutcome:
    phone: str
    status: Status
    message_id: str | None = None
    provider_code: str | None = None
    provider_message: str | None = None
    retry_safe: bool = False
    """Whether sending this number again cannot produce a second SMS."""
    auth_error: bool = False
    """The provider refused the credentials (signature, key or account); nothing was sent."""
    final: bool = False
    """A refusal every provider would give (an invalid or blacklisted number, forbidden content)."""
    provider: str | None = None
    """On the unified route: the provider that answered last."""
    operation: str | None = None
    attempts: tuple[Attempt, ...] = ()
    """On the unified route: every provider tried, in order."""

    @property
    def sent(self) -> bool:
        return self.status is Status.ACCEPTED

    @property
    def may_fail_over(self) -> bool:
        """Whether another provider may try: provably unsent here, for reasons of this provider."""
        return self.status in FAILOVER and not self.final


@dataclass(frozen=True, slots=True)
class SendResult:
    """One outcome per phone number, in the order of the request."""

    provider: str
    operation: str
    outcomes: tuple[NumberOutcome, ...]
    calls: int
    """How many HTTP calls the send took (one per chunk)."""

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def all_failed(self) -> bool:
        return not any(o.sent for o in self.outcomes)

    @property
    def auth_failed(self) -> bool:
        return any(o.auth_error for o in self.outcomes)
