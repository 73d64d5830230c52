"""Options shared by the client commands, and turning them into a Socket."""

from __future__ import annotations

import argparse
import json
import ssl
from typing import Any

from ..socket import Socket

__all__ = ["add_connection_options", "make_socket", "parse_json", "parse_pairs"]


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a connect param of the socket (repeatable)",
    )
    parser.add_argument(
        "--join-param",
        action="append",
        default=[],
        metavar="K=V",
        help="a join param of the channel (repeatable)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait (default 10)"
    )
    parser.add_argument("--vsn", default="2.0.0", choices=["1.0.0", "2.0.0"])
    parser.add_argument(
        "--transport", default="websocket", choices=["websocket", "longpoll"]
    )
    parser.add_argument("--auth-token", help="sent as phoenix.js 1.8 sends authToken")
    parser.add_argument("--cafile", help="trust the CA certificates in this PEM file")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates (logged as a warning)",
    )


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like key=value, got {pair!r}")
        out[key] = value
    return out


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {text!r} ({exc})") from None


def make_socket(args: argparse.Namespace) -> Socket:
    tls: ssl.SSLContext | bool | None = None
    if args.cafile:
        tls = ssl.create_default_context(cafile=args.cafile)
    elif args.insecure:
        tls = False
    return Socket(
        args.url,
        params=parse_pairs(args.param, "--param"),
        timeout=args.timeout,
        vsn=args.vsn,
        transport=args.transport,
        auth_token=args.auth_token,
        ssl=tls,
    )
