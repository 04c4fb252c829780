"""The local stack for the fuzz tests: the whole gateway on loopback, quotas off, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.sandbox import ProviderSandbox
from local.stack import LocalStack

QUOTAS_OFF = "phone_per_minute=0,phone_per_hour=0,phone_per_day=0,account_per_day=0,ip_per_day=0"


@pytest.fixture(scope="session")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The gateway with its quotas off, so that generated requests may send to the same numbers again."""
    state_dir: Path = tmp_path_factory.mktemp("fuzz-stack")
    overrides = {f"{provider}QuotaLimits": QUOTAS_OFF for provider in ("Polyv", "Aliyun", "Ronglian")}
    # The handlers' logs go beside the engines' logs, out of the test report.
    with (state_dir / "functions.log").open("ab") as function_logs:
        stack = LocalStack(
            api_port=0, state_dir=state_dir, function_output=function_logs, parameter_overrides=overrides
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="session")
def stack_sandbox(fuzz_stack: LocalStack) -> ProviderSandbox:
    """The stack's provider sandbox (not the stand-alone `sandbox` of tests/conftest.py)."""
    assert fuzz_stack.sandbox is not None
    return fuzz_stack.sandbox
