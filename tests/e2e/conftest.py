"""The local stack for end-to-end tests: DynamoDB Local, moto server, the provider sandbox, one
worker per function and the API Gateway emulator, on free ports, once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir = tmp_path_factory.mktemp("local-stack")
    # The handlers' logs go beside the engines' logs, out of the test report.
    with (state_dir / "functions.log").open("ab") as function_logs:
        stack = LocalStack(
            api_port=0,
            state_dir=state_dir,
            function_output=function_logs,
            # Read the secret on every request, so that Secrets Manager going down shows at once.
            parameter_overrides={"SecretMaxAgeSeconds": "0"},
        )
        stack.start()
        yield stack
        stack.stop()
