"""Watch the pushes in flight, and how long each one took.

python examples/monitoring.py ws://127.0.0.1:4000/socket
"""

import asyncio
import sys

from phoenix_channels import Socket


async def main(url: str) -> None:
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        await channel.join()
        pushes = [channel.push("slow", {"ms": 100 * i}) for i in range(1, 6)]
        while pending := socket.pending_pushes():
            loop_now = asyncio.get_running_loop().time()
            ages = ", ".join(
                f"{p.event}#{p.ref} {loop_now - (p.sent_at or loop_now):.2f}s"
                for p in pending
            )
            print(f"{len(pending)} in flight: {ages}")
            await asyncio.sleep(0.15)  # a dashboard refresh
        for push in pushes:
            print(f"{push.event}#{push.ref}: {push.status} in {push.duration:.3f} s")


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    )
