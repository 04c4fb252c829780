"""A function restored from a SnapStart snapshot, in process: its hooks run as Lambda runs them,
around real sends to the provider sandbox over loopback, with the secret in moto server and the
tables in DynamoDB Local. What a send caches (clients, provider sessions, the secret) is closed and
forgotten by a restore, and built again by the next send."""

from __future__ import annotations

from typing import Any

import boto3
import requests
from requests.adapters import HTTPAdapter

from local.sandbox import ProviderSandbox
from smsgw import connections, runtime, snapshot
from tests.support import event, invoke


def _pools(session: requests.Session) -> int:
    """The connection pools a session holds open, one per host it talked to (its one adapter
    serves http and https alike)."""
    adapters = {id(a): a for a in session.adapters.values() if isinstance(a, HTTPAdapter)}
    return sum(len(adapter.poolmanager.pools) for adapter in adapters.values())


def _secret_reads() -> list[str]:
    """Secrets Manager calls of the clients the default session makes from now on."""
    reads: list[str] = []
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **kwargs: reads.append("GetSecretValue")
    )
    return reads


def _send() -> dict[str, Any]:
    status, body = invoke("polyv", event("polyv-send.json"))
    assert status == 200, body
    assert {r["status"] for r in body["results"]} == {"accepted"}
    return body


def test_a_restored_function_sends_with_clients_sessions_and_credentials_of_its_own(
    deploy: Any, sandbox: ProviderSandbox
) -> None:
    deploy("polyv")
    __import__("polyv.app")  # the function's module registers its warm-ups, as Lambda imports it
    connections.close_all()  # what earlier tests left: a function's process starts with none
    snapshot.before_snapshot()
    assert connections.live() == []

    snapshot.after_restore()
    reads = _secret_reads()
    _send()
    used = connections.live()
    sessions = [c for c in used if isinstance(c, requests.Session)]
    provider = runtime.runtime()
    assert reads == ["GetSecretValue"]
    assert [_pools(s) for s in sessions] == [1]
    assert len(used) > len(sessions)  # the boto3 clients: DynamoDB's, Secrets Manager's

    snapshot.after_restore()
    assert connections.live() == []
    assert [_pools(s) for s in sessions] == [0]
    assert runtime.runtime.cache_info().currsize == 0

    reads = _secret_reads()
    _send()
    rebuilt = connections.live()
    assert reads == ["GetSecretValue"]
    assert runtime.runtime() is not provider
    assert not {id(c) for c in rebuilt} & {id(c) for c in used}
    assert len(sandbox.calls_for("polyv.send")) == 2
