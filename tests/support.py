"""Small helpers for tests of every tier."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (for connection-refused cases and servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
