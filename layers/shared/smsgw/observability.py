"""The one place Powertools objects are created; every handler shares them.

The service name and metrics namespace come from `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE` (set in template.yaml's Globals); the fallbacks keep a function
that runs without them emitting valid EMF instead of failing every invocation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from smsgw.outcomes import SendResult, Status

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "sms-gateway")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SmsGateway")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# The SDKs' DEBUG logs carry whole requests and answers (secrets, phone numbers): whatever level
# the function's logs are set to, theirs stop at INFO.
for _library in ("botocore", "boto3", "urllib3", "s3transfer", "aws_lambda_powertools"):
    logging.getLogger(_library).setLevel(logging.INFO)


def traced[F: Callable[..., Any]](handler: F) -> F:
    """The handler in an X-Ray subsegment (cold start and service annotated, its answer not
    captured) where tracing is on. Where Powertools' Tracer would be off (POWERTOOLS_TRACE_DISABLED,
    or outside Lambda), the handler itself: a Tracer loads the X-Ray SDK (its recorder, asyncio,
    wrapt) when it is made, on every cold start, even to trace nothing."""
    if Tracer._is_tracer_disabled():
        return handler
    return cast(F, Tracer(service=SERVICE).capture_lambda_handler(handler, capture_response=False))


class Reported(Protocol):
    """What a send's report says of its caller."""

    @property
    def tenant(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def correlation_id(self) -> str | None: ...


def report_destinations(accepted: list[tuple[str, str]], metric: str) -> None:
    """Counts per destination, for the conversion rate: one EMF document per (country, number block),
    aggregated by country, by block, and over all (`accepted` at send, `converted` on feedback)."""
    groups: dict[tuple[str, str], int] = {}
    for country, block in accepted:
        groups[(country, block)] = groups.get((country, block), 0) + 1
    for (country, block), count in groups.items():
        emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        emf.add_dimension(name="country", value=country)
        emf.add_dimensions(block=block)  # a second dimension set: the same count by number block
        emf.add_metric(name=metric, unit=MetricUnit.Count, value=count)
        emf.flush_metrics()


def report_guard(window: object) -> None:
    """A guard window went over and closed for its cool-down (the alarm's metric)."""
    scope = getattr(window, "key", "").split("#")[1:3]
    emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    emf.add_dimension(name="guard", value=scope[0] if scope else "guard")
    emf.add_metric(name="guard_closed", unit=MetricUnit.Count, value=1)
    emf.flush_metrics()
    logger.warning("guard closed", extra={"guard": "#".join(scope), "cooldown": getattr(window, "cooldown", 0)})


def report_send(result: SendResult, caller: Reported, provider_ms: float | None = None) -> None:
    """One log line and one EMF document per send, each with its own provider and operation, so
    that sends of one invocation (the records of an SQS batch) never share or overwrite dimensions."""
    # Per handset: a number given twice in a request is one SMS, counted once.
    first = {o.phone: o.status for o in reversed(result.outcomes)}
    counts = {status.value: sum(1 for s in first.values() if s is status) for status in Status}
    logger.info(
        "send finished",
        extra={
            "provider": result.provider,
            "operation": result.operation,
            "tenant": caller.tenant,
            "request_id": caller.request_id,
            "calls": result.calls,
            **counts,
            **({"correlation_id": caller.correlation_id} if caller.correlation_id else {}),
        },
    )
    emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    emf.add_dimension(name="provider", value=result.provider)
    emf.add_dimension(name="operation", value=result.operation)
    for status, count in counts.items():
        emf.add_metric(name=f"numbers_{status}", unit=MetricUnit.Count, value=count)
    if provider_ms is not None:
        emf.add_metric(name="provider_latency", unit=MetricUnit.Milliseconds, value=provider_ms)
    emf.flush_metrics()


def mask_phone(phone: str) -> str:
    """`13800138000` → `138****8000`: enough to tell numbers apart in logs, not to dial them."""
    digits = phone.lstrip("+")
    if len(digits) <= 7:
        return "*" * (len(digits) - 2) + digits[-2:]
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
