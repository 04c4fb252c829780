"""The provider accounts the sandbox knows: fixed, local-only credentials.

They are published on purpose: they open nothing but the sandbox, so tests, the local stack and
anyone running `python -m local.sandbox` can sign requests the sandbox will accept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PolyvAccount:
    app_id: str
    app_secret: str


@dataclass(frozen=True)
class AliyunAccount:
    access_key_id: str
    access_key_secret: str


@dataclass(frozen=True)
class RonglianAccount:
    account_sid: str
    auth_token: str
    # The one application of this account the sandbox accepts in the body's `appId`.
    app_id: str


@dataclass(frozen=True)
class SandboxAccounts:
    """One primary account per provider, plus any number of extra ones.

    The primary accounts are what fixtures and the local stack hand to the gateway; the extra ones
    let a test prove that a second tenant's credentials are told apart from the first's.
    """

    # Published local-only credentials, not secrets (see the module docstring).
    polyv: PolyvAccount = PolyvAccount(
        app_id="sandbox-polyv-app",
        app_secret="sandbox-polyv-secret-0000000000",  # noqa: S106
    )
    aliyun: AliyunAccount = AliyunAccount(
        access_key_id="sandbox-aliyun-akid",
        access_key_secret="sandbox-aliyun-secret",  # noqa: S106
    )
    ronglian: RonglianAccount = RonglianAccount(
        account_sid="8a216da8000000000000000000000001",
        auth_token="0123456789abcdef0123456789abcdef",  # noqa: S106
        app_id="8a216da8000000000000000000000abc",
    )
    extra_polyv: tuple[PolyvAccount, ...] = ()
    extra_aliyun: tuple[AliyunAccount, ...] = ()
    extra_ronglian: tuple[RonglianAccount, ...] = ()

    @property
    def polyv_secrets(self) -> dict[str, str]:
        """appId → appSecret of every Polyv application (the primary one wins a clash)."""
        secrets = {a.app_id: a.app_secret for a in self.extra_polyv}
        secrets[self.polyv.app_id] = self.polyv.app_secret
        return secrets

    @property
    def aliyun_secrets(self) -> dict[str, str]:
        """AccessKeyId → AccessKeySecret of every Aliyun key (the primary one wins a clash)."""
        secrets = {a.access_key_id: a.access_key_secret for a in self.extra_aliyun}
        secrets[self.aliyun.access_key_id] = self.aliyun.access_key_secret
        return secrets

    @property
    def ronglian_accounts(self) -> dict[str, RonglianAccount]:
        """accountSid → account of every Ronglian account (the primary one wins a clash)."""
        accounts = {a.account_sid: a for a in self.extra_ronglian}
        accounts[self.ronglian.account_sid] = self.ronglian
        return accounts

    def with_polyv(self, app_id: str, app_secret: str) -> SandboxAccounts:
        return replace(self, extra_polyv=(*self.extra_polyv, PolyvAccount(app_id, app_secret)))

    def with_aliyun(self, access_key_id: str, access_key_secret: str) -> SandboxAccounts:
        return replace(self, extra_aliyun=(*self.extra_aliyun, AliyunAccount(access_key_id, access_key_secret)))

    def with_ronglian(self, account_sid: str, auth_token: str, app_id: str) -> SandboxAccounts:
        account = RonglianAccount(account_sid, auth_token, app_id)
        return replace(self, extra_ronglian=(*self.extra_ronglian, account))


DEFAULT_ACCOUNTS = SandboxAccounts()
