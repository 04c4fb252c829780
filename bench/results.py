"""One run's results, what the report derives from them, and the report's formatting."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.coldstart import ColdStartResult
from bench.inprocess import INJECTED, QueuePoint, SweepPoint, WarmResult
from bench.phases import BREAKDOWN
from bench.receipt_route import StackReceipts
from bench.routes import Series
from bench.sizes import Size
from smsgw.config import ProviderSettings

COLD_TARGET = 1.5
OVERHEAD_TARGET_MS = 3.0
DYNAMODB_ROUNDS_TARGET = 3
PROVIDER_ROUNDS_TARGET = 1
# Provider calls one request makes at once, as deployed (the template parameter's default).
CONCURRENCY = ProviderSettings.model_fields["provider_max_concurrency"].default
QUEUE_TARGET = 1.5
# What the gateway imports that a bare `import boto3` does not, by top-level package: the libraries
# it is built on (Powertools, pydantic, requests, the X-Ray SDK) and their own dependencies.
REQUIRED_BEYOND_BOTO3 = (
    "aws_lambda_powertools",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
    "requests",
    "charset_normalizer",
    "idna",
    "certifi",
    "aws_xray_sdk",
    "wrapt",
)
PROVIDER_STEP = next(label for label, step, _ in BREAKDOWN if step == "provider")


Points = dict[tuple[str, int, str, bool], SweepPoint]
Row = tuple[str, str, str, str, str]
"""A row of the targets table: target, measured, verdict, distance, where the time goes."""


@dataclass
class Results:
    date: datetime
    quick: bool
    counts: dict[str, int]
    elapsed: float
    other_work: dict[str, float]
    """Per phase: the share of the machine's cores busy with processes not the benchmark's."""
    rebuilt: bool
    cold: ColdStartResult
    warm: list[WarmResult]
    sweep: Points
    queue: dict[int, QueuePoint]
    artifacts: list[Size]
    layer_entries: list[Size]
    sdk: dict[str, Series] = field(default_factory=dict)
    """`gateway` and `sdk`: 1-number SendBatchSms warm, in alternating blocks."""
    unified: dict[str, Series] = field(default_factory=dict)
    """`/v1/messages`: `direct`, `failover`, and each `-injected` (20 ms on every call)."""
    receipts: dict[str, Series] = field(default_factory=dict)
    """`send` (the sends receipts answer), `route` (one push each), `consumer` (batches of 10)."""
    stack_receipts: StackReceipts | None = None
    """The receipt route over HTTP on a whole local stack (bench.receipt_route)."""


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def ops(counter: Counter[str]) -> str:
    """Calls counted by operation: the total, then each."""
    if not counter:
        return "0"
    return f"{counter.total()} ({', '.join(f'{k} {v}' for k, v in sorted(counter.items()))})"


def size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.1f} KB"


def busy(point: SweepPoint | QueuePoint) -> str:
    """Share of the machine's cores the send kept busy (this process + DynamoDB Local)."""
    cores = os.cpu_count() or 1
    used = point.cpu_ms + point.sandbox_cpu_ms + point.engine_cpu_ms
    return f"{used / (point.mean_wall_ms * cores):.0%}"


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


# -- derived numbers -------------------------------------------------------------------------------


def point(results: Results, op: str, n: int, mode: str = "none", key: bool = False) -> SweepPoint:
    return results.sweep[(op, n, mode, key)]


def implied_rounds(results: Results, op: str, mode: str) -> float:
    base = point(results, op, 100).wall_ms
    return (point(results, op, 100, mode).wall_ms - base) / (INJECTED * 1000)


def chunks(n: int) -> int:
    """Transactions (and read-backs) of up to 100 numbers."""
    return -(-n // 100)


def minimum_dynamodb(n: int, key: bool = False) -> int:
    """The floor: the numbers' items changed by one conditional update (one number) or one
    transaction per 100, with a key its claim in the first of them (so n + 1 items); one update for
    the account and one for the IP counter; the pumping guard's counters of the numbers' blocks (each
    number in a block of its own here): one update for one block, a transaction per 100 blocks; one
    message log record (with a key, in the transaction that completes the key)."""
    take = 1 if n == 1 else chunks(n + key)
    guard = 1 if n == 1 else chunks(n)
    return take + 2 + guard + 1


def read_backs(n: int, key: bool = False) -> int:
    """The gateway's one `BatchGetItem` per numbers' transaction (a transaction returns no counts,
    and each result reports what is left of its number's tightest window); a number alone after the
    first transaction is one update, read back by it."""
    if n == 1:
        return 1 if key else 0
    later = [min(100, n - i) for i in range(100 - key, n, 100)]
    return 1 + sum(1 for size in later if size > 1)


def index_writes(receipt_calls: int) -> int:
    """`BatchWriteItem` of 25 receipt index items, one item per provider call whose receipts come
    back (Aliyun's, Ronglian's)."""
    return -(-receipt_calls // 25)


def gateway_dynamodb(n: int, key: bool = False, receipt_calls: int = 0) -> int:
    """What the gateway makes (tests/integration/test_send_flow.py::test_dynamodb_calls_per_request):
    the minimum, the read-backs and the receipt index's writes."""
    return minimum_dynamodb(n, key) + read_backs(n, key) + index_writes(receipt_calls)
