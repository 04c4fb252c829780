"""What 1000 SMS cost on AWS on a day of 1000 messages, from the calls counted in this run: each a
1-number send through the API (the Aliyun function, SendBatchSms), its delivery receipt pushed to
the receipt route, and that receipt consumed from the receipts queue alone (at 1000 a day the
queue's poller finds one at a time). Public on-demand prices for us-east-1, no free tier."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.routes import Series
from bench.stack import REPOSITORY

PRICES_READ = "2026-12-01"
"""When the prices below were read (AWS's pricing pages for each service, us-east-1)."""
LAMBDA_GB_SECOND_ARM = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
DYNAMODB_WRU = 0.625 / 1e6
DYNAMODB_RRU = 0.125 / 1e6
SQS_REQUEST = 0.40 / 1e6
API_REST_REQUEST = 3.50 / 1e6
SECRETS_API_CALL = 0.05 / 10_000
SECRET_MONTH = 0.40
LOGS_GB = 0.50
ALIYUN_SMS_CNY = 0.045
"""Aliyun's mainland verification-code SMS, list price per message (indicative: 0.035-0.05 by
package and volume)."""
CNY_PER_USD = 7.1
"""Indicative exchange rate."""
MESSAGES = 1000
LAMBDA_LINES_BYTES = 350
"""Lambda's own START, END and REPORT lines per invocation (about)."""
ACCESS_LOG_BYTES = 450
"""API Gateway's access log line per request (the template's format, filled in)."""
SECRET_MAX_AGE = 300
"""SecretMaxAgeSeconds' default: a warm function reads its secret again after that."""
SECRETS = ("provider (Aliyun)", "receipt tokens")


def memory_gb() -> float:
    """The functions' MemorySize (template.yaml's Globals)."""
    found = re.search(r"^\s+MemorySize:\s*(\d+)", (REPOSITORY / "template.yaml").read_text(), re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.5


@dataclass(frozen=True)
class Line:
    item: str
    quantity: str
    usd: float


def calls(series: Series, kind: str) -> float:
    """Calls of one AWS service per sample, mean."""
    samples = series.samples
    return sum(len(s.of(kind)) for s in samples) / max(len(samples), 1)


def billed_gb_seconds(series: Series, gb: float) -> float:
    """Per invocation: its duration rounded up to the millisecond, times the memory."""
    samples = series.samples
    return sum(math.ceil(s.wall * 1000) / 1000 * gb for s in samples) / max(len(samples), 1)


def lines(receipts: dict[str, Series]) -> list[Line]:
    """The day's bill, line by line (MESSAGES sends, receipts and receipt consumptions)."""
    send, route, consumer = receipts["send"], receipts["route"], receipts["consumer"]
    gb = memory_gb()
    invocations = 3 * MESSAGES
    gb_s = MESSAGES * sum(billed_gb_seconds(s, gb) for s in (send, route, consumer))
    wru = MESSAGES * sum(s.units()[0] for s in (send, route, consumer))
    rru = MESSAGES * sum(s.units()[1] for s in (send, route, consumer))
    # The route's SendMessage, then the poller's ReceiveMessage and DeleteMessage for each receipt.
    sqs = MESSAGES * (calls(send, "sqs") + calls(route, "sqs") + calls(consumer, "sqs") + 2)
    secret_reads = len(SECRETS) * 86_400 / SECRET_MAX_AGE
    logged = sum(s.log_bytes for s in (send, route, consumer))
    log_bytes = MESSAGES * (logged + 3 * LAMBDA_LINES_BYTES + 2 * ACCESS_LOG_BYTES)
    return [
        Line(
            "API Gateway REST requests", f"{2 * MESSAGES:,} (sends and receipt pushes)", 2 * MESSAGES * API_REST_REQUEST
        ),
        Line(
            "Lambda requests", f"{invocations:,} (send, receipt route, receipt consumer)", invocations * LAMBDA_REQUEST
        ),
        Line(
            "Lambda duration (arm64)",
            f"{gb_s:,.1f} GB-s ({gb * 1024:.0f} MB, durations measured here)",
            gb_s * LAMBDA_GB_SECOND_ARM,
        ),
        Line("DynamoDB write request units", f"{wru:,.0f} WRU", wru * DYNAMODB_WRU),
        Line("DynamoDB read request units", f"{rru:,.0f} RRU", rru * DYNAMODB_RRU),
        Line("SQS requests", f"{sqs:,.0f}", sqs * SQS_REQUEST),
        Line(
            "Secrets Manager API calls",
            f"{secret_reads:,.0f} (one read per secret every {SECRET_MAX_AGE} s, one warm instance)",
            secret_reads * SECRETS_API_CALL,
        ),
        Line("CloudWatch Logs ingestion", f"{log_bytes / 1e6:,.2f} MB", log_bytes / 1e9 * LOGS_GB),
    ]


def fixed_per_day() -> list[Line]:
    """What the deployment costs a day whatever it sends (not in the per-message total)."""
    return [
        Line(
            "Secrets Manager secrets", f"{len(SECRETS)} x ${SECRET_MONTH:.2f} a month", len(SECRETS) * SECRET_MONTH / 30
        )
    ]


def provider_usd() -> float:
    """The provider's price of MESSAGES SMS, in dollars."""
    return MESSAGES * ALIYUN_SMS_CNY / CNY_PER_USD
