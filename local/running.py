"""A local stack for the length of a `with` block, on a free port, as the end-to-end tests and the
benchmark start it: the handlers' logs in the stack's folder, beside the engines' logs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local.stack import LocalStack

# The quotas and the pumping guard off: the same numbers again and again, and many of one number block.
QUOTAS_OFF = "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,account_per_day=0,ip_per_day=0,block_per_hour=0"

DELIVERY_KEYS = {"shop-1": "key-of-shop-1"}
# Delivery tracking: the quotas and the pumping guard off for Aliyun and Ronglian (a thousand numbers
# of one block); a receipt that comes before its send is recorded seen again within seconds, as often
# as it takes (a batch takes less than the visibility timeout: one that took longer would be
# delivered again); three workers per function.
DELIVERY_OVERRIDES = {
    "AliyunQuotaLimits": QUOTAS_OFF,
    "RonglianQuotaLimits": QUOTAS_OFF,
    "QueueVisibilityTimeoutSeconds": "10",
    "QueueMaxReceiveCount": "20",
}
DELIVERY_CONCURRENCY = 3


@contextmanager
def running(state_dir: Path, **options: object) -> Iterator[LocalStack]:
    """`LocalStack(**options)` on a free port, started, with its folder and its handlers' logs in
    `state_dir` (functions.log), stopped when the block ends, however it ends."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "functions.log").open("ab") as function_logs:
        stack = LocalStack(api_port=0, state_dir=state_dir, function_output=function_logs, **options)  # type: ignore[arg-type]
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


@contextmanager
def running_for_delivery(state_dir: Path) -> Iterator[LocalStack]:
    """The local stack set up for delivery tracking (DELIVERY_OVERRIDES), with DELIVERY_KEYS."""
    with running(
        state_dir,
        parameter_overrides=DELIVERY_OVERRIDES,
        api_keys=DELIVERY_KEYS,
        function_concurrency=DELIVERY_CONCURRENCY,
    ) as stack:
        yield stack
