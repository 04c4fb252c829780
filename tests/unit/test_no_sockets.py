"""The unit tier is held to its rule: a socket opened here fails the test that opens it."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError


def test_opening_a_socket_in_the_unit_tier_fails() -> None:
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
