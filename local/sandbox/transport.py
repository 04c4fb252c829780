"""HTTP on loopback for both listeners: a threading server, request bodies read with a size cap,
JSON answers on one-request connections, and the abort that a `reset` fault needs."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, cast

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
JSON_TYPE = "application/json;charset=UTF-8"


class BadRequest(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining handler threads on close would make stop() wait out every sleeping `timeout` fault.
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], serve: Callable[[Handler], None]
    ) -> None:
        self.serve = serve
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the host, which can stall for seconds.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSandbox/1.0"

    def serve(self) -> None:
        cast(Server, self.server).serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"x", 16)
                except ValueError as exc:
                    raise BadRequest("bad chunk size") from exc
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BadRequest("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError as exc:
            raise BadRequest("bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("bad Content-Length")
        return self.rfile.read(length)

    def send_json(self, status: int, payload: Any) -> None:
        self.send_bytes(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), JSON_TYPE)

    def send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        # One request per connection, so a listener that goes down refuses the very next call.
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            logger.debug("client went away before the answer")

    def abort(self) -> None:
        """Drop the connection with an RST and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket only really closes (and sends the RST) once the read file lets go of it.
            self.rfile.close()
            self.connection.close()
        except OSError:
            logger.debug("connection already gone")


class ProviderHandler(Handler):
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = Handler.serve


class ControlHandler(Handler):
    do_GET = do_POST = do_DELETE = do_PUT = Handler.serve


def listen(host: str, port: int, handler: type[Handler], serve: Callable[[Handler], None], name: str) -> Server:
    server = Server((host, port), handler, serve)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{name}", daemon=True
    )
    thread.start()
    return server


def close(server: Server) -> None:
    server.shutdown()
    server.server_close()
