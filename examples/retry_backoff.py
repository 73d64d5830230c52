"""Retry a push that times out, waiting longer between attempts.

The demo room's `slow` event answers after `ms` milliseconds; with a 0.2 s
timeout the first attempts time out, and each retry waits backoff(n) first.

    python examples/retry_backoff.py ws://127.0.0.1:4000/socket
"""

import asyncio
import sys

from phoenix_channels import PushTimeout, Socket


async def main(url: str) -> None:
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        await channel.join()
        push = channel.push("slow", {"ms": 300}, timeout=0.2)
        push.receive("timeout", lambda: print("attempt timed out; retrying"))
        try:
            reply = await push.retry(attempts=4, backoff=lambda n: 0.1 * 2**n)
            print("ok after retries:", reply)
        except PushTimeout as error:
            print("gave up:", error)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    )
