"""The one place Powertools objects are created; every handler shares them."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def mask_phone(phone: str) -> str:
    """`13800138000` → `138****8000`: enough to tell numbers apart in logs, not to dial them."""
    digits = phone.lstrip("+")
    if len(digits) <= 7:
        return "*" * (len(digits) - 2) + digits[-2:]
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
