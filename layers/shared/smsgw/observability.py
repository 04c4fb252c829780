"""The one place Powertools objects are created; every handler shares them.

The service name and metrics namespace come from `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE` (set in template.yaml's Globals); the fallbacks keep a function
that runs without them emitting valid EMF instead of failing every invocation.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "sms-gateway")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SmsGateway")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# The SDKs' DEBUG logs carry whole requests and answers (secrets, phone numbers): whatever level
# the function's logs are set to, theirs stop at INFO.
for _library in ("botocore", "boto3", "urllib3", "s3transfer", "aws_lambda_powertools"):
    logging.getLogger(_library).setLevel(logging.INFO)


def mask_phone(phone: str) -> str:
    """`13800138000` → `138****8000`: enough to tell numbers apart in logs, not to dial them."""
    digits = phone.lstrip("+")
    if len(digits) <= 7:
        return "*" * (len(digits) - 2) + digits[-2:]
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
