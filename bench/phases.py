"""Where a warm send's in-process overhead goes: the gateway's main steps are wrapped with timers
for the duration of one measuring pass (never during the headline figures), and each step's time
is counted without the DynamoDB or provider I/O that was in flight inside it."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

import smsgw.routes.aliyun
import smsgw.routes.polyv
import smsgw.routes.ronglian
import smsgw.sender
from bench.probes import Sample, covered
from smsgw.credentials import CredentialStore
from smsgw.idempotency import IdempotencyStore
from smsgw.messages import MessageLog
from smsgw.providers.base import ProviderClient
from smsgw.quotas import QuotaLedger
from smsgw.schemas import SendResponse
from smsgw.service import SendService

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Span:
    name: str
    start: float
    end: float


class Phases:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                span = Span(name, start, time.perf_counter())
                with self._lock:
                    self.spans.append(span)

        return timed

    @contextmanager
    def installed(self) -> Iterator[Phases]:
        targets: list[tuple[Any, str, str]] = [
            (ApiGatewayResolver, "resolve", "resolve"),
            (smsgw.routes.polyv, "dispatch", "dispatch"),
            (smsgw.routes.aliyun, "dispatch", "dispatch"),
            (smsgw.routes.ronglian, "dispatch", "dispatch"),
            (SendService, "send", "service"),
            (CredentialStore, "get", "credentials"),
            (QuotaLedger, "reserve", "reserve"),
            (ProviderClient, "send", "provider"),
            # The name the send flow calls it by, not the module that defines it.
            (smsgw.sender, "report_send", "record"),
            (SendResponse, "of", "answer"),
            (SendResponse, "http_status", "answer"),
            (SendResponse, "model_dump", "answer"),
            # Without a key the log record is a PutItem of its own; with one it completes the key's record.
            (MessageLog, "record", "store"),
            (IdempotencyStore, "complete", "store"),
        ]
        # `model_dump` is inherited: the class gets its own for the pass, and loses it again after.
        saved = [(owner, attr, owner.__dict__.get(attr, _ABSENT)) for owner, attr, _ in targets]
        try:
            for owner, attr, name in targets:
                setattr(owner, attr, self._wrap(name, getattr(owner, attr)))
            yield self
        finally:
            for owner, attr, original in saved:
                if original is _ABSENT:
                    delattr(owner, attr)
                else:
                    setattr(owner, attr, original)

    def take(self) -> list[Span]:
        with self._lock:
            spans, self.spans = self.spans, []
        return spans


# What each row of the breakdown is: (label, step, steps nested in it that are counted apart).
BREAKDOWN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Powertools decorators (Logger context, Tracer) and the body check", "handler", ("resolve",)),
    ("Powertools resolver: routing, request validation, response serialisation", "resolve", ("dispatch",)),
    ("Credentials (cached secret, model validation)", "credentials", ()),
    ("Quota reservation without its DynamoDB I/O (keys, thread pool, botocore)", "reserve", ()),
    ("Provider client without its HTTP (signing, requests, parsing)", "provider", ()),
    ("Rest of the send (request copy, outcomes, refunds)", "service", ("credentials", "reserve", "provider")),
    ("Log line and metrics (`report_send`, its EMF flush)", "record", ()),
    ("Response model (`SendResponse.of`, its status, `model_dump`)", "answer", ()),
    ("Message log write without its DynamoDB I/O (botocore)", "store", ()),
    ("Rest of the flow (`dispatch`, `Sender`)", "dispatch", ("service", "record", "answer", "store")),
)


def own_times(sample: Sample, spans: Sequence[Span]) -> dict[str, float]:
    """Per step: its time inside this sample with no I/O in flight (seconds)."""
    inside = [s for s in spans if s.start >= sample.start and s.end <= sample.end]
    totals: dict[str, float] = {"handler": sample.overhead}
    for span in inside:
        own = (span.end - span.start) - covered(sample.calls, span.start, span.end)
        totals[span.name] = totals.get(span.name, 0.0) + own
    return totals


def breakdown(per_sample: Sequence[dict[str, float]]) -> list[tuple[str, float]]:
    """Mean exclusive time per row (ms), so the rows add up to the mean overhead."""
    rows = []
    for label, step, nested in BREAKDOWN:
        values = [t.get(step, 0.0) - sum(t.get(n, 0.0) for n in nested) for t in per_sample]
        rows.append((label, sum(values) / len(values) * 1000))
    return rows
