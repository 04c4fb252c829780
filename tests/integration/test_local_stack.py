"""`LocalStack`'s API keys and worker pools as configured, and what it refuses before anything starts:
a port in use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.processes import StackError
from local.stack import LocalStack, resolve_api_keys

ROOT = Path(__file__).parents[2]


def test_one_key_given_alone_is_the_local_tenant() -> None:
    stack = LocalStack(api_key="local-dev-key")

    assert stack.api_keys == {"local": "local-dev-key"}
    assert (stack.api_key_id, stack.api_key) == ("local", "local-dev-key")
    assert stack.function_concurrency == 2


def test_without_a_key_one_random_key_is_the_local_tenant() -> None:
    first, second = LocalStack().api_keys, LocalStack().api_keys

    assert list(first) == list(second) == ["local"]
    assert first["local"] != second["local"]


def test_several_keys_each_with_its_tenant_the_first_being_the_default() -> None:
    stack = LocalStack(api_keys={"tenant-a": "key-a", "tenant-b": "key-b"}, function_concurrency=3)

    assert stack.api_keys == {"tenant-a": "key-a", "tenant-b": "key-b"}
    assert (stack.api_key_id, stack.api_key) == ("tenant-a", "key-a")
    assert stack.function_concurrency == 3


@pytest.mark.parametrize(
    "entries",
    [
        [(None, "key-a"), ("local", "key-b")],
        [("tenant-a", "same"), ("tenant-b", "same")],
        [("tenant#a", "key-a")],
        [("tenant-a", "")],
    ],
    ids=["id-twice", "value-twice", "bad-id", "no-value"],
)
def test_keys_that_could_not_tell_tenants_apart_are_refused(entries: list[tuple[str | None, str]]) -> None:
    with pytest.raises(ValueError, match="API key"):
        resolve_api_keys(entries)


def test_a_function_needs_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LocalStack(function_concurrency=0)


# -- Refusals before anything starts ---------------------------------------------------------


def make_run(folder: Path, port: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m local.stack` as `make run` starts it: how it ended, and how long that took."""
    began = time.monotonic()
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "local.stack", "--port", str(port), "--state-dir", str(folder), "--api-key", "k"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - began


def test_a_port_in_use_fails_before_anything_starts_naming_the_port(tmp_path: Path) -> None:
    # Given a port something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(api_port=port, state_dir=tmp_path)

        began = time.monotonic()
        with pytest.raises(StackError, match=f"port {port} on 127.0.0.1 is in use") as refused:
            stack.start()
        took = time.monotonic() - began

        done, whole = make_run(tmp_path, port)

    assert took < 1.0
    assert "PORT=" in str(refused.value)
    # Nothing started: no engine wrote a log
    assert list(tmp_path.iterdir()) == []
    # The same from the command line, interpreter start-up and all
    assert done.returncode == 1
    assert f"local stack: port {port} on 127.0.0.1 is in use" in done.stderr
    assert whole < 5.0, whole
