"""The sandboxes the sandbox tests run against: one on the real clock, one on a clock that stands still."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.sandbox import DEFAULT_ACCOUNTS, ProviderSandbox
from tests.sandbox.provider_calls import FakeClock


@pytest.fixture(scope="module")
def live() -> Iterator[ProviderSandbox]:
    with ProviderSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def box(live: ProviderSandbox) -> Iterator[ProviderSandbox]:
    """A real-clock sandbox, emptied and up."""
    live.come_up()
    live.reset()
    yield live
    live.come_up()
    live.reset()


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def frozen_server(clock: FakeClock) -> Iterator[ProviderSandbox]:
    extra = DEFAULT_ACCOUNTS.with_polyv("second-app", "second-secret")
    with ProviderSandbox(clock=clock, accounts=extra) as sandbox:
        yield sandbox


@pytest.fixture
def frozen(frozen_server: ProviderSandbox, clock: FakeClock) -> ProviderSandbox:
    """A sandbox whose clock stands still at `clock.now` until a test moves it."""
    clock.now = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
    frozen_server.reset()
    return frozen_server
