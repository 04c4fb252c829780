"""Run the provider sandbox on its own: `python -m local.sandbox --port 8999`; Ctrl-C stops it.

Every provider answers on that port, and each on a port of its own too (`--provider-port`).
Aliyun's and Ronglian's receipts go to `--receipt-url` (none without one); the inbox of accepted
messages is the control API's `/inbox`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from local.sandbox.server import ProviderSandbox


def _provider_port(text: str) -> tuple[str, int]:
    name, separator, port = text.partition("=")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name, int(port)


def _provider_port_url(text: str) -> tuple[str, str]:
    name, separator, url = text.partition("=")
    if not separator or not url:
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {text!r}")
    return name, url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8999, help="provider port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--control-port", type=int, default=None, help="control API port (default: --port + 1, or any free port)"
    )
    parser.add_argument(
        "--provider-port",
        type=_provider_port,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="the port of a provider's own listener, e.g. aliyun=9002 (default: any free port); repeatable",
    )
    parser.add_argument(
        "--receipt-url",
        type=_provider_port_url,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="where a provider's receipts are pushed, e.g. aliyun=http://127.0.0.1:3000/v1/receipts/aliyun/TOKEN",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    control_port = args.control_port if args.control_port is not None else (args.port + 1 if args.port else 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGTERM too, so a supervising process stops it as cleanly as Ctrl-C does.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sandbox = ProviderSandbox(port=args.port, control_port=control_port, provider_ports=dict(args.provider_port))
    except ValueError as exc:
        parser.error(str(exc))
    with sandbox:
        try:
            sandbox.configure_receipts(urls=dict(args.receipt_url))
        except ValueError as exc:
            parser.error(str(exc))
        own = ", ".join(f"{name} on {url}" for name, url in sandbox.provider_urls.items())
        print(
            f"Provider sandbox on {sandbox.url} (control API on {sandbox.control_url}); inbox "
            f"{sandbox.control_url}/inbox; {own}; Ctrl-C stops it",
            flush=True,
        )
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
