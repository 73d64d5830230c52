"""The ``phoenix-channels`` command: demo, serve, push, connect."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from .options import add_connection_options

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phoenix-channels",
        description="Talk to a Phoenix Channels server, or run one.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the bundled server and the push scenarios against it",
        description="Start the bundled server on a free loopback port and run "
        "the push scenarios (ok, error, timeout, resend, retry with backoff, "
        "batch, monitoring) against it. Exit 0 when all behave as expected.",
    )
    demo.add_argument("--url", help="run the scenarios against this server instead")
    demo.add_argument("--vsn", default="2.0.0", choices=["1.0.0", "2.0.0"])

    serve = commands.add_parser(
        "serve",
        help="run the bundled Phoenix-protocol server with the demo channels",
        description="Run the bundled Phoenix-protocol server (socket at /socket) "
        "with the demo channels room:* and presence:*.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument(
        "--max-channels",
        type=int,
        default=100,
        help="topics one connection may join (default 100, as Phoenix)",
    )

    push = commands.add_parser(
        "push",
        help="join a topic, push one event, print the reply as JSON",
        description="Join TOPIC, push EVENT with the JSON payload, print the "
        "reply's response as JSON. Exit 0 on ok, 1 on error, 2 on timeout, "
        "3 when the connection or the join fails.",
    )
    push.add_argument("url", metavar="URL", help="e.g. ws://127.0.0.1:4000/socket")
    push.add_argument("topic", metavar="TOPIC")
    push.add_argument("event", metavar="EVENT")
    push.add_argument("payload", metavar="JSON", nargs="?", default="{}")
    add_connection_options(push)

    connect = commands.add_parser(
        "connect",
        help="an interactive console: join, push, leave, see messages",
        description="Connect and read commands from stdin (a terminal or a "
        "pipe): 'join TOPIC [JSON]', 'push TOPIC EVENT [JSON]', 'leave TOPIC', "
        "'help', 'quit'. Incoming messages are printed as they arrive.",
    )
    connect.add_argument("url", metavar="URL")
    add_connection_options(connect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.ERROR, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args))
        if args.command == "serve":
            from .serve import run_serve

            return asyncio.run(run_serve(args))
        if args.command == "push":
            from .push import run_push

            return asyncio.run(run_push(args))
        from .console import run_console

        return asyncio.run(run_console(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
