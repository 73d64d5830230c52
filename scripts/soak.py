"""Soak the client (and a server) through a chaos proxy, with faults.

One socket, ``--channels`` channels pushing ``--rate`` pushes per second in
all, faults injected at random with ``--seed``; every invariant of
``phoenix_channels.testing.soak`` is checked throughout. Prints the report
(Markdown) and exits 0 if no invariant was violated, 1 otherwise::

    python scripts/soak.py --seconds 300 --seed 1
    python scripts/soak.py --transport longpoll --seconds 60
    python scripts/soak.py --url ws://127.0.0.1:4000/socket --topic room:soak

Without ``--url`` the bundled demo server runs in this process, which
allows server-side faults too (drop, restart, stall).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from phoenix_channels.testing.soak import ALL_FAULTS, SoakConfig, run_soak


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="default 60")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="pushes per second (default 100)"
    )
    parser.add_argument("--channels", type=int, default=10, help="default 10")
    parser.add_argument(
        "--url",
        default=None,
        help="a ws:// socket endpoint to soak (default: the bundled demo server)",
    )
    parser.add_argument(
        "--topic", default="room:soak", help="topic prefix (default room:soak)"
    )
    parser.add_argument(
        "--transport", choices=["websocket", "longpoll"], default="websocket"
    )
    parser.add_argument("--vsn", choices=["1.0.0", "2.0.0"], default="2.0.0")
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated fault kinds (default: all the target allows; "
        f"known: {','.join(ALL_FAULTS)})",
    )
    parser.add_argument(
        "--heartbeat", type=float, default=0.3, help="heartbeat interval (0.3 s)"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="do not trace memory (faster)"
    )
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # The soak counts the library's warnings and reports its errors as
    # violations: the terminal gets the report only, unless --verbose.
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    )
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    config = SoakConfig(
        url=args.url,
        seconds=args.seconds,
        seed=args.seed,
        rate=args.rate,
        channels=args.channels,
        topic_prefix=args.topic,
        transport=args.transport,
        vsn=args.vsn,
        faults=args.faults.split(",") if args.faults else None,
        heartbeat_interval=args.heartbeat,
        trace_memory=not args.no_memory,
    )
    report = asyncio.run(run_soak(config))
    print(report.format())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
