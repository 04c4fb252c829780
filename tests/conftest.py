"""Fixtures shared by every tier: the provider sandbox and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.sandbox import DEFAULT_ACCOUNTS, ProviderSandbox
from smsgw.providers.aliyun import AliyunCredentials
from smsgw.providers.polyv import PolyvCredentials
from smsgw.providers.ronglian import RonglianCredentials


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ProviderSandbox]:
    server = ProviderSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: ProviderSandbox) -> Iterator[ProviderSandbox]:
    """The session's sandbox, emptied and up for each test."""
    sandbox_server.come_up()
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.come_up()
    sandbox_server.reset()


@pytest.fixture
def polyv_credentials(sandbox: ProviderSandbox) -> PolyvCredentials:
    account = DEFAULT_ACCOUNTS.polyv
    return PolyvCredentials(app_id=account.app_id, app_secret=account.app_secret, endpoint=sandbox.url)


@pytest.fixture
def aliyun_credentials(sandbox: ProviderSandbox) -> AliyunCredentials:
    account = DEFAULT_ACCOUNTS.aliyun
    return AliyunCredentials(
        access_key_id=account.access_key_id, access_key_secret=account.access_key_secret, endpoint=sandbox.url
    )


@pytest.fixture
def ronglian_credentials(sandbox: ProviderSandbox) -> RonglianCredentials:
    account = DEFAULT_ACCOUNTS.ronglian
    return RonglianCredentials(
        account_sid=account.account_sid, auth_token=account.auth_token, app_id=account.app_id, endpoint=sandbox.url
    )
