"""A loopback impersonation of the Polyv, Aliyun and Ronglian SMS APIs, with fault injection."""

from local.sandbox.accounts import (
    DEFAULT_ACCOUNTS,
    AliyunAccount,
    PolyvAccount,
    RonglianAccount,
    SandboxAccounts,
)
from local.sandbox.faults import OPERATIONS, Fault, FaultKind
from local.sandbox.server import (
    ProviderSandbox,
    RecordedCall,
    aliyun_signature,
    polyv_sign,
    ronglian_authorization,
    ronglian_sig,
)

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
