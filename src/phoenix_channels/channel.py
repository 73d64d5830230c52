"""Channel: one topic joined over a socket (PROTOCOL §4).

Theory of operation. Every state change goes through :data:`TRANSITIONS`,
one table of (state, trigger) -> next state, applied by ``_transition``; a
pair not in the table changes nothing and raises :class:`IllegalTransition`.
Timers, buffers and callbacks react to a transition; they never set the state
themselves.

- ``join()`` sends ``phx_join``; its ref is the channel's ``join_ref``.
  Pushes made before the join succeeds are buffered and sent on join ok with
  a new ref and a fresh timer (PROTOCOL §4.4).
- A join error, a join timeout or a ``phx_error`` make the channel
  ``errored`` and schedule a rejoin on the ``rejoin_after`` backoff, but only
  while the socket is connected; a socket open rejoins errored channels at
  once (PROTOCOL §4.3).
- ``leave()`` sends ``phx_leave`` and closes the channel locally at once,
  without waiting for the server (PROTOCOL §4.5).
- Messages whose ``join_ref`` is set and is not ours are dropped (§4.8).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, Registered, register
from .errors import BufferFull
from .message import PHX_CLOSE, PHX_ERROR, PHX_JOIN, PHX_LEAVE, PHX_REPLY
from .push import Push, check_timeout
from .serializer import check_binary_field
from .timers import RetryTimer

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["Channel", "ChannelState", "IllegalTransition", "Trigger"]

Params = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None


class ChannelState(str, enum.Enum):
    CLOSED = "closed"
    ERRORED = "errored"
    JOINED = "joined"
    JOINING = "joining"
    LEAVING = "leaving"


class Trigger(enum.Enum):
    JOIN = "join"  # join() or a rejoin sends phx_join
    JOIN_OK = "join ok"
    JOIN_ERROR = "join error"
    JOIN_TIMEOUT = "join timeout"
    ERROR = "phx_error"  # from the server, or the transport went down
    CLOSE = "phx_close"  # from the server, or the end of leave()
    LEAVE = "leave"


_S, _T = ChannelState, Trigger

#: Every channel state change (PROTOCOL §4.10).
TRANSITIONS: dict[tuple[ChannelState, Trigger], ChannelState] = {
    (_S.CLOSED, _T.JOIN): _S.JOINING,
    (_S.ERRORED, _T.JOIN): _S.JOINING,
    (_S.JOINING, _T.JOIN_OK): _S.JOINED,
    (_S.JOINING, _T.JOIN_ERROR): _S.ERRORED,
    (_S.JOINING, _T.JOIN_TIMEOUT): _S.ERRORED,
    (_S.JOINING, _T.ERROR): _S.ERRORED,
    (_S.JOINED, _T.ERROR): _S.ERRORED,
    (_S.ERRORED, _T.ERROR): _S.ERRORED,
    **{(state, _T.CLOSE): _S.CLOSED for state in ChannelState},
    **{(state, _T.LEAVE): _S.LEAVING for state in ChannelState},
}


_CONTROL_EVENTS = frozenset((PHX_CLOSE, PHX_ERROR))


class IllegalTransition(RuntimeError):
    """A trigger that the channel's current state does not allow."""


def _closure(params: Params) -> Callable[[], Mapping[str, Any]]:
    if params is None:
        return dict
    if callable(params):
        return params
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping or a callable, got {params!r}")
    return lambda: params


class Channel:
    """A topic on a socket. Made by :meth:`Socket.channel`."""

    def __init__(self, topic: str, params: Params, socket: Socket) -> None:
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a string, got {topic!r}")
        self.topic = topic
        self.socket = socket
        self._params = _closure(params)
        self._state = ChannelState.CLOSED
        self._timeout = socket.timeout
        self._joined_once = False
        self._bindings: dict[str, tuple[tuple[int, Registered], ...]] = {}
        self._binding_ref = 0
        self._push_buffer: list[Push] = []
        self._log = socket._log
        self._join_push = Push(self, PHX_JOIN, self._params, self._timeout)
        self._join_push._add_hook("ok", register(self._on_join_ok), internal=True)
        self._join_push._add_hook("error", register(self._on_join_error), True)
        self._join_push._add_hook("timeout", register(self._on_join_timeout), True)
        self._rejoin_timer = RetryTimer(
            socket._timers, self._on_rejoin_timer, socket.rejoin_after
        )
        # Like phoenix.js, these two hooks take refs from the socket's counter.
        self._socket_refs = [
            socket.on_error(self._rejoin_timer.reset),
            socket.on_open(self._on_socket_open),
        ]

    def __repr__(self) -> str:
        return f"<Channel {self.topic!r} state={self._state.value!r}>"

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        """One of "closed", "errored", "joined", "joining", "leaving"."""
        return self._state.value

    def _transition(self, trigger: Trigger) -> None:
        new = TRANSITIONS.get((self._state, trigger))
        if new is None:
            raise IllegalTransition(
                f"channel {self.topic!r}: {trigger.value!r} is not allowed "
                f"in state {self._state.value!r}"
            )
        if self.socket._debug:
            self._log.debug("= %s %s -> %s", self.topic, self._state.value, new.value)
        self._state = new

    @property
    def join_ref(self) -> str | None:
        """The ref of the current join, which tags this join's messages."""
        return self._join_push._ref

    def can_push(self) -> bool:
        """True when the socket is open and the channel joined."""
        return self._state is ChannelState.JOINED and self.socket.is_connected()

    @property
    def params(self) -> Mapping[str, Any]:
        """The join params (a callable is re-read at each join)."""
        return self._params()

    # -- public API --------------------------------------------------------

    def join(self, timeout: float | None = None) -> Push:
        """Join the topic; returns the join push (awaitable).

        ``timeout`` also becomes the channel's default for later pushes,
        leaves and rejoins, as in phoenix.js.

        Raises:
            RuntimeError: this channel was already joined once.
        """
        if self._joined_once:
            raise RuntimeError(
                "tried to join multiple times. 'join' can only be called a "
                "single time per channel instance; make a new one with "
                "socket.channel(topic) to join again"
            )
        if timeout is not None:
            self._timeout = check_timeout(timeout)
        self.socket._check_send_room()  # raise BufferFull before any change
        self._joined_once = True
        self._rejoin()
        return self._join_push

    def leave(self, timeout: float | None = None) -> Push:
        """Leave the topic; the channel closes locally at once.

        ``phx_leave`` is sent (or buffered while offline); ``on_close``
        callbacks get ``"leave"``. The returned push already holds ``"ok"``.
        """
        timeout = self._timeout if timeout is None else check_timeout(timeout)
        self._rejoin_timer.reset()
        self._transition(Trigger.LEAVE)
        leave_push = Push(self, PHX_LEAVE, {}, timeout)
        leave_push._add_hook("ok", register(self._on_left), internal=True)
        leave_push._add_hook("timeout", register(self._on_left), internal=True)
        try:
            leave_push.send()
        except BufferFull:  # offline with a full buffer: still leave locally
            self._log.warning(
                "! %s: phx_leave not buffered (send buffer full)", self.topic
            )
        if not self.can_push():  # always true now: PROTOCOL §4.5, §14.1
            leave_push._end("ok", {})
        return leave_push

    def push(
        self,
        event: str,
        payload: Mapping[str, Any] | bytes | None = None,
        timeout: float | None = None,
    ) -> Push:
        """Push ``event``; buffered until the join succeeds.

        Raises:
            RuntimeError: ``join()`` was never called.
            TypeError / ValueError: the event, payload or timeout is invalid.
        """
        if not isinstance(event, str):
            raise TypeError(f"event must be a string, got {event!r}")
        if not self._joined_once:
            raise RuntimeError(
                f"tried to push {event!r} to {self.topic!r} before joining. "
                "Use channel.join() before pushing events"
            )
        payload = _check_payload(payload)
        if isinstance(payload, bytes):
            check_binary_field("topic", self.topic)
            check_binary_field("event", event)
        timeout = self._timeout if timeout is None else check_timeout(timeout)
        push = Push(self, event, payload, timeout)
        if self.can_push():
            push.send()
        else:
            self.socket._check_encodable(self.topic, event, payload)
            self.socket._check_buffer_room(self)
            push._start_timeout()
            self._push_buffer.append(push)
        return push

    def on(self, event: str, callback: Callback) -> int:
        """Call ``callback(payload)`` for each ``event``; returns a ref for ``off``."""
        if not isinstance(event, str):
            raise TypeError(f"event must be a string, got {event!r}")
        ref = self._binding_ref
        self._binding_ref += 1
        entry = (ref, register(callback))
        # Copy-on-write: a dispatch in progress keeps iterating its snapshot.
        self._bindings[event] = (*self._bindings.get(event, ()), entry)
        return ref

    def off(self, event: str, ref: int | None = None) -> None:
        """Remove the ``event`` callback with ``ref``, or all of them."""
        bindings = self._bindings.get(event, ())
        kept = tuple(b for b in bindings if ref is not None and b[0] != ref)
        if kept:
            self._bindings[event] = kept
        else:
            self._bindings.pop(event, None)

    def on_close(self, callback: Callback) -> int:
        """Call ``callback(payload)`` when the channel closes (server or leave)."""
        return self.on(PHX_CLOSE, callback)

    def on_error(self, callback: Callback) -> int:
        """Call ``callback(reason)`` when the channel errors."""
        return self.on(PHX_ERROR, callback)

    # -- inbound (called by the socket) ------------------------------------

    def _is_member(self, join_ref: str | None, ref: str | None, event: str) -> bool:
        """PROTOCOL §4.8: drop a message tagged with another join's ref.

        vsn 1.0.0 frames carry no join_ref, but the server puts the join's ref
        in the ``ref`` of ``phx_close``/``phx_error`` (transcripts README fact
        9), which is all there is to tell an old join's close from ours.
        """
        own = self._join_push._ref
        if join_ref:
            stale = join_ref != own
        else:
            stale = bool(ref) and ref != own and event in _CONTROL_EVENTS
        if stale and self.socket._debug:
            self._log.debug("< %s: dropping outdated %s", self.topic, event)
        return not stale

    def _trigger(
        self, event: str, payload: Any, ref: str | None, join_ref: str | None
    ) -> None:
        if event == PHX_REPLY:
            self._on_reply(payload, ref)
        elif event == PHX_CLOSE:
            self._on_close()
        elif event == PHX_ERROR:
            self._on_error(payload)
        bindings = self._bindings.get(event)
        if bindings:
            args = (payload, ref, join_ref or self._join_push._ref)
            invoke = self.socket._invoke
            for _, cb in bindings:
                invoke(cb, args)

    def _on_reply(self, payload: Any, ref: str | None) -> None:
        push = self.socket._in_flight.get(ref) if ref is not None else None
        if push is None or push.channel is not self:
            if self.socket._debug:
                self._log.debug("< %s: reply for unknown ref %r", self.topic, ref)
            return
        if type(payload) is not dict or not isinstance(payload.get("status"), str):
            self._log.warning(
                "! %s: malformed reply for ref %r dropped (expected "
                '{"status": ..., "response": ...})',
                self.topic,
                ref,
            )
            return
        push._end(payload["status"], payload.get("response", {}))

    def _on_close(self) -> None:
        self._rejoin_timer.reset()
        if self.socket._debug:
            self._log.debug("= close %s %s", self.topic, self.join_ref)
        self._transition(Trigger.CLOSE)
        self.socket._remove(self)
        # No rejoin will come: whoever awaits the join gets its last outcome.
        self._join_push._release()

    def _on_error(self, reason: Any) -> None:
        self._log.info("! %s errored: %r", self.topic, reason)
        was_joining = self._state is ChannelState.JOINING
        self._transition(Trigger.ERROR)
        if was_joining:
            self._join_push._abandon("error", reason)
        if self.socket.is_connected():
            self._rejoin_timer.schedule()

    def _on_left(self) -> None:
        if self.socket._debug:
            self._log.debug("= leave %s", self.topic)
        self._trigger(PHX_CLOSE, "leave", None, None)

    # -- join machinery ----------------------------------------------------

    def _rejoin(self) -> None:
        if self._state is ChannelState.LEAVING:
            return
        self.socket._leave_open_topic(self)
        self._transition(Trigger.JOIN)
        self._join_push.resend(self._timeout)

    def _on_rejoin_timer(self) -> None:
        if self.socket.is_connected():
            self._rejoin()

    def _on_socket_open(self) -> None:
        self._rejoin_timer.reset()
        if self._state is ChannelState.ERRORED:
            self._rejoin()

    def _on_join_ok(self) -> None:
        self._transition(Trigger.JOIN_OK)
        self._rejoin_timer.reset()
        buffered, self._push_buffer = self._push_buffer, []
        for push in buffered:
            if push._sent or push._status is not None:
                continue  # resent meanwhile (its own attempt), or already ended
            try:
                push.send()
            except Exception:
                self._log.exception("! %s: buffered %r not sent", self.topic, push)
                push._end("error", {"reason": "could not be sent"})

    def _on_join_error(self) -> None:
        self._transition(Trigger.JOIN_ERROR)
        if self.socket.is_connected():
            self._rejoin_timer.schedule()

    def _on_join_timeout(self) -> None:
        if self._state is not ChannelState.JOINING:
            return  # left or closed meanwhile: nothing to retry
        self._log.info("- %s: join timed out after %g s", self.topic, self._timeout)
        Push(self, PHX_LEAVE, {}, self._timeout).send()
        self._transition(Trigger.JOIN_TIMEOUT)
        self._join_push._reset()
        if self.socket.is_connected():
            self._rejoin_timer.schedule()


def _check_payload(payload: object) -> dict[str, Any] | bytes:
    if payload is None:
        return {}
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, Mapping):
        return dict(payload)
    raise TypeError(
        f"payload must be a dict, bytes or None, got {type(payload).__name__}"
    )
