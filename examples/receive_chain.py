"""phoenix.js style: chain receive() callbacks on a push.

python examples/receive_chain.py ws://127.0.0.1:4000/socket
"""

import asyncio
import sys

from phoenix_channels import Socket


async def main(url: str) -> None:
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        channel.on("pushed", lambda payload: print("server pushed:", payload))
        await channel.join()

        done = asyncio.Event()
        channel.push("push_me", {"x": 1}).receive(
            "ok", lambda response: (print("ok:", response), done.set())
        ).receive(
            "error", lambda response: (print("error:", response), done.set())
        ).receive("timeout", lambda: (print("timed out"), done.set()))
        await asyncio.wait_for(done.wait(), 15)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    )
