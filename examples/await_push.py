"""Await a push like a promise: the ok response, or an exception.

phoenix-channels serve &            # or any Phoenix app with the demo room channel
python examples/await_push.py ws://127.0.0.1:4000/socket
"""

import asyncio
import sys

from phoenix_channels import PushError, PushTimeout, Socket


async def main(url: str) -> None:
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        print("joined:", await channel.join())
        print("echo ->", await channel.push("echo", {"body": "hello"}))
        try:
            await channel.push("fail", {})
        except PushError as error:
            print("fail ->", error.status, error.response)
        try:
            await channel.push("noreply", {}, timeout=0.5)
        except PushTimeout as error:
            print("noreply ->", error)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    )
