"""`LocalStack`'s API keys and worker pools as configured, before anything starts."""

from __future__ import annotations

import pytest

from local.stack import LocalStack, resolve_api_keys


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
