"""What every provider client shares: the HTTP session, chunking, concurrency, transport errors.

A client never retries a send by itself. Whether a failed call may be resent depends on whether
the request can have reached the provider, and that is decided here once for every provider:
a refused or timed-out connect is provably unsent (`retryable`); a read timeout or a connection
dropped after the request was written is `ambiguous`.
"""

from __future__ import annotations

import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from smsgw.connections import held
from smsgw.models import SendRequest
from smsgw.outcomes import NumberOutcome, SendResult, Status

Clock = Callable[[], datetime]
NonceFactory = Callable[[], str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_nonce() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class HttpSettings:
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_concurrency: int = 32
    """Chunks of one send in flight at once (and the size of the connection pool)."""

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True, slots=True)
class Chunk:
    """The part of a request that goes out in one provider call."""

    index: int
    phones: tuple[str, ...]
    data: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Classified:
    """How a provider code is to be read, before it is attached to numbers."""

    status: Status
    retry_safe: bool = False
    auth_error: bool = False
    final: bool = False
    """A refusal any provider would give: no failover (see NumberOutcome.final)."""


ACCEPTED = Classified(Status.ACCEPTED)
REJECTED = Classified(Status.REJECTED)
REJECTED_EVERYWHERE = Classified(Status.REJECTED, final=True)
AUTH_REJECTED = Classified(Status.REJECTED, auth_error=True)
RATE_LIMITED = Classified(Status.RATE_LIMITED, retry_safe=True)
RETRYABLE = Classified(Status.RETRYABLE, retry_safe=True)
AMBIGUOUS = Classified(Status.AMBIGUOUS)


def http_status_class(status_code: int) -> Classified:
    """A failure read from the HTTP status alone, when the body says nothing usable.

    A 504 comes from a proxy that stopped waiting for the provider, which may have sent already.
    """
    if status_code == 504:
        return AMBIGUOUS
    if status_code >= 500 or status_code == 429:
        return RETRYABLE
    if 400 <= status_code < 500:
        return AUTH_REJECTED if status_code in (401, 403) else REJECTED
    # A 2xx or 3xx body that cannot be read: the provider may have acted on it.
    return AMBIGUOUS


def _caused_by_connect_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, NameResolutionError, ConnectTimeoutError)):
            return True
        reason = getattr(current, "reason", None)
        nested = [a for a in current.args if isinstance(a, BaseException)]
        for candidate in (reason, current.__cause__, current.__context__, *nested):
            if isinstance(candidate, BaseException):
                todo.append(candidate)
    return False


def transport_failure_class(exc: requests.RequestException) -> tuple[Classified, str]:
    """Whether a call that raised may have reached the provider."""
    if isinstance(exc, requests.ConnectTimeout) or _caused_by_connect_failure(exc):
        return RETRYABLE, "connect_failed"
    if isinstance(exc, requests.exceptions.SSLError):
        # The handshake failed, so no request bytes were sent.
        return RETRYABLE, "tls_failed"
    if isinstance(exc, requests.ReadTimeout):
        return AMBIGUOUS, "read_timeout"
    return AMBIGUOUS, "connection_lost"


def uses_proxy(environ: Mapping[str, str]) -> bool:
    """Whether the environment names a proxy (`HTTPS_PROXY`, `no_proxy`...: any `*_proxy`, as urllib reads it)."""
    return any(name.lower().endswith("_proxy") and value for name, value in environ.items())


def no_retry_session(pool_size: int) -> requests.Session:
    """A session that never resends: urllib3 would otherwise retry some failed requests.

    A session that trusts the environment reads it again on every call (proxies, CA bundle,
    ~/.netrc: about 0.1 ms of a warm send). A function's environment does not change, so it is read
    here, once: the CA bundle becomes the session's; with a proxy set, requests keeps reading the
    environment itself, so that NO_PROXY and the rest work as requests documents them."""
    session = requests.Session()
    session.trust_env = uses_proxy(os.environ)
    if not session.trust_env:
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    retry = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return held(session)


class ProviderClient[RequestT: SendRequest](ABC):
    """Turns a validated send request into signed provider calls and one outcome per number."""

    provider: ClassVar[str]
    operation: ClassVar[str]
    max_chunk_size: ClassVar[int]

    def __init__(
        self,
        *,
        settings: HttpSettings | None = None,
        session: requests.Session | None = None,
        clock: Clock = utc_now,
        nonce: NonceFactory = new_nonce,
        chunk_size: int | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.session = session or no_retry_session(self.settings.max_concurrency)
        self.clock = clock
        self.nonce = nonce
        self.chunk_size = chunk_size or self.max_chunk_size
        if not 1 <= self.chunk_size <= self.max_chunk_size:
            raise ValueError(f"chunk_size must be between 1 and {self.max_chunk_size}")
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # -- what each provider supplies -------------------------------------------------------

    @abstractmethod
    def _chunks(self, request: RequestT) -> list[Chunk]:
        """Split the request into provider calls, each at most `chunk_size` numbers."""

    @abstractmethod
    def _call(self, request: RequestT, chunk: Chunk) -> requests.Response:
        """Sign and make one provider call."""

    @abstractmethod
    def _interpret(self, request: RequestT, chunk: Chunk, response: requests.Response) -> list[NumberOutcome]:
        """Read one provider answer into an outcome for every number of the chunk."""

    def _transport_retry_safe(self, request: RequestT, classified: Classified) -> bool:
        """Whether resending after a transport failure is safe; a provider that dedupes widens it."""
        return classified.retry_safe

    # -- shared machinery ------------------------------------------------------------------

    def send(self, request: RequestT) -> SendResult:
        chunks = self._chunks(request)
        if len(chunks) == 1:
            per_chunk = [self._send_chunk(request, chunks[0])]
        else:
            per_chunk = list(self._pool().map(lambda c: self._send_chunk(request, c), chunks))
        outcomes = tuple(o for chunk_outcomes in per_chunk for o in chunk_outcomes)
        return SendResult(provider=self.provider, operation=self.operation, outcomes=outcomes, calls=len(chunks))

    def close(self) -> None:
        self.session.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.settings.max_concurrency, thread_name_prefix=f"{self.provider}-send"
                )
            return self._executor

    def _send_chunk(self, request: RequestT, chunk: Chunk) -> list[NumberOutcome]:
        try:
            response = self._call(request, chunk)
        except requests.RequestException as exc:
            classified, code = transport_failure_class(exc)
            return self.same_for_all(
                chunk,
                Classified(classified.status, self._transport_retry_safe(request, classified)),
                code=code,
                message=type(exc).__name__,
            )
        except Exception as exc:
            # A fault of the client itself: whether the call went out is unknown, and the other
            # chunks' outcomes must survive it. Never a reason to resend.
            return self.same_for_all(chunk, AMBIGUOUS, code="client_error", message=type(exc).__name__)
        with response:
            return self._interpret(request, chunk, response)

    def unreadable(self, chunk: Chunk, response: requests.Response) -> list[NumberOutcome]:
        """An answer whose body is not the provider's JSON: only the HTTP status is left to read."""
        return self.same_for_all(
            chunk, http_status_class(response.status_code), code=str(response.status_code), message="unreadable body"
        )

    @staticmethod
    def same_for_all(
        chunk: Chunk,
        classified: Classified,
        *,
        code: str | None,
        message: str | None,
        message_id: str | None = None,
    ) -> list[NumberOutcome]:
        return [outcome(phone, classified, code=code, message=message, message_id=message_id) for phone in chunk.phones]


def outcome(
    phone: str, classified: Classified, *, code: str | None, message: str | None, message_id: str | None = None
) -> NumberOutcome:
    return NumberOutcome(
        phone=phone,
        status=classified.status,
        message_id=message_id,
        provider_code=code,
        provider_message=message,
        retry_safe=classified.retry_safe,
        auth_error=classified.auth_error,
        final=classified.final,
    )


def json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def split(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
