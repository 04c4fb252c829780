"""The providers the sandbox impersonates. Another one is a module like polyv.py and a line here:
the dispatcher routes to it and faults accept its operations from this list alone."""

from __future__ import annotations

from local.sandbox.aliyun import Aliyun
from local.sandbox.polyv import Polyv
from local.sandbox.provider import Provider
from local.sandbox.ronglian import Ronglian

PROVIDERS: tuple[type[Provider], ...] = (Polyv, Aliyun, Ronglian)

NAMES: tuple[str, ...] = tuple(provider.NAME for provider in PROVIDERS)
OPERATIONS: tuple[str, ...] = tuple(operation for provider in PROVIDERS for operation in provider.OPERATIONS)
