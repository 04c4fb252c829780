"""A loopback impersonation of the Polyv, Aliyun and Ronglian SMS APIs, with fault injection.

A client pointed at `ProviderSandbox.url` instead of the provider's host cannot tell the
difference in the wire format: same paths, parameters, signatures, clocks and answer bodies
(docs/providers.md is the reference). Every signature is checked with code that shares nothing with
the gateway's clients: Aliyun's with Aliyun's own signer, Polyv's and Ronglian's with functions of
their own, proven against the providers' published answers in the tests.

Where the providers' documents say nothing, the sandbox makes a choice and says so in a comment
marked "Sandbox choice".
"""

from local.sandbox.accounts import (
    DEFAULT_ACCOUNTS,
    AliyunAccount,
    PolyvAccount,
    RonglianAccount,
    SandboxAccounts,
)
from local.sandbox.aliyun import aliyun_signature
from local.sandbox.faults import Fault, FaultKind
from local.sandbox.polyv import polyv_sign
from local.sandbox.registry import OPERATIONS
from local.sandbox.ronglian import ronglian_authorization, ronglian_sig
from local.sandbox.server import ProviderSandbox
from local.sandbox.state import RecordedCall

__all__ = [
    "DEFAULT_ACCOUNTS",
    "OPERATIONS",
    "AliyunAccount",
    "Fault",
    "FaultKind",
    "PolyvAccount",
    "ProviderSandbox",
    "RecordedCall",
    "RonglianAccount",
    "SandboxAccounts",
    "aliyun_signature",
    "polyv_sign",
    "ronglian_authorization",
    "ronglian_sig",
]
