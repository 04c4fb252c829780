"""Every connection pool the gateway opens, remembered weakly: the boto3 clients and the provider
and webhook HTTP sessions. A function restored from a snapshot closes them all (`smsgw.snapshot`):
no pooled socket is shared by two copies of one snapshot, or reused after the restore broke it."""

from __future__ import annotations

import contextlib
import weakref
from typing import Protocol


class Closable(Protocol):
    def close(self) -> None: ...


_HELD: weakref.WeakSet[Closable] = weakref.WeakSet()


def held[C: Closable](connection: C) -> C:
    """A boto3 client or requests session, remembered until it is closed or collected."""
    _HELD.add(connection)
    return connection


def live() -> list[Closable]:
    """The remembered clients and sessions still in use."""
    return list(_HELD)


def close_all() -> int:
    """Close every remembered client and session, and forget them; how many there were. One that
    fails to close is forgotten all the same: nothing uses it again."""
    connections = list(_HELD)
    _HELD.clear()
    for connection in connections:
        with contextlib.suppress(Exception):
            connection.close()
    return len(connections)
