"""A batch of pushes, pipelined: send them all, then await them together.

python examples/batch.py ws://127.0.0.1:4000/socket
"""

import asyncio
import sys
import time

from phoenix_channels import Socket


async def main(url: str) -> None:
    async with Socket(url) as socket:
        channel = socket.channel("room:lobby")
        await channel.join()
        ops = [("echo", {"i": i}) for i in range(1000)] + [("fail", {})]
        started = time.perf_counter()
        results = await asyncio.gather(
            *(channel.push(event, payload) for event, payload in ops),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
        failures = [r for r in results if isinstance(r, Exception)]
        print(f"{len(ops)} pushes in {elapsed * 1000:.0f} ms, {len(failures)} failed:")
        for failure in failures:
            print("  ", failure)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:4000/socket")
    )
