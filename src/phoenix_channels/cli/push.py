"""``phoenix-channels push``: join, push once, print the reply."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import ConnectError, JoinError, PushError, PushTimeout
from .options import make_socket, parse_json, parse_pairs

__all__ = ["EXIT_CONNECT", "EXIT_ERROR", "EXIT_OK", "EXIT_TIMEOUT", "run_push"]

EXIT_OK, EXIT_ERROR, EXIT_TIMEOUT, EXIT_CONNECT = 0, 1, 2, 3


async def run_push(args: argparse.Namespace) -> int:
    try:
        payload = parse_json(args.payload)
        join_params = parse_pairs(args.join_param, "--join-param")
        if not isinstance(payload, dict):
            raise ValueError("the JSON payload must be an object, e.g. '{\"a\": 1}'")
        socket = make_socket(args)
        await socket.connect()
    except (ValueError, ConnectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    try:
        channel = socket.channel(args.topic, join_params)
        try:
            await channel.join()
        except (JoinError, PushTimeout) as exc:
            print(f"error: could not join: {exc}", file=sys.stderr)
            return EXIT_CONNECT
        try:
            response = await channel.push(args.event, payload)
        except PushTimeout as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_TIMEOUT
        except PushError as exc:
            _print_reply(exc.response)
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        _print_reply(response)
        return EXIT_OK
    finally:
        await socket.disconnect()


def _print_reply(response: Any) -> None:
    if isinstance(response, bytes):
        sys.stdout.buffer.write(response)
        sys.stdout.flush()
    else:
        print(json.dumps(response, ensure_ascii=False))
