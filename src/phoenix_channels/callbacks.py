"""Calling user callbacks: by their declared arity, async or not, never raising.

API.md: a callback that declares no parameters is called with none; otherwise
it gets the documented arguments (as many as it accepts, so ``on(event, cb)``
callbacks may take ``payload`` or ``payload, ref, join_ref`` like phoenix.js).
An ``async def`` callback's coroutine is scheduled on the loop. An exception
from a callback is logged and the next callback still runs (STYLE §6).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

__all__ = ["Callback", "Registered", "arity", "invoke", "register"]

Callback = Callable[..., Any]
ALL_ARGS = -1


class Registered(NamedTuple):
    """A callback with its arity worked out once, at registration."""

    fn: Callback
    nargs: int


def arity(fn: Callback) -> int:
    """How many positional arguments ``fn`` takes (``ALL_ARGS`` for ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return ALL_ARGS
    count = 0
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return ALL_ARGS
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


def register(fn: Callback) -> Registered:
    if not callable(fn):
        raise TypeError(f"callback must be callable, got {type(fn).__name__}")
    return Registered(fn, arity(fn))


def invoke(
    cb: Registered,
    args: tuple[Any, ...],
    logger: logging.Logger,
    spawn: Callable[[Coroutine[Any, Any, Any]], None],
) -> None:
    """Call ``cb`` with as many of ``args`` as it takes; log what it raises."""
    try:
        nargs = cb.nargs
        if nargs == ALL_ARGS or nargs == len(args):
            result = cb.fn(*args)
        else:
            result = cb.fn(*args[:nargs])
        if result is not None and inspect.isawaitable(result):
            spawn(_as_coroutine(result) if not inspect.iscoroutine(result) else result)
    except Exception:
        logger.exception("! callback %r raised", cb.fn)


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable
