"""Bulk work for replays: many commands in one round trip, and the net effect of many events' writes.

- `run_commands(redis, commands)` sends a list of commands as one pipelined write and returns their raw
  replies in order (hiredis packs and parses them; no per-command redis-py machinery). It uses the
  batching connection of `hitl_streams.streams.autobatch` when `redis` is a plain `redis.asyncio.Redis`, and a
  redis-py non-transactional pipeline otherwise (cluster clients, other encodings). `send_commands` is
  the same without the wait: it returns the future of the replies as soon as the commands are queued, so
  a replay keeps Redis busy with one batch's writes while it computes the next batch.
- `NetOps` folds the projection writes of a batch of events into their net effect per key: the last
  value of a STRING, each member's last score (or removal) in a ZSET, the union of a SET, the positions
  pushed onto a LIST in order. Applied to empty keys, or to keys only this replay writes, the result is
  the same as running every write in order, in far fewer commands (one MSET for a batch's records, one
  ZADD per index, one RPUSH per audit list, one script call per audit bucket).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from ..history.projection import Op
from .autobatch import raw_link
from .scripts import APPEND_FIELDS_LUA

__all__ = ["NetOps", "checked", "run_commands", "send_commands"]

_CHUNK = 512
"""Arguments pairs per MSET/ZADD command: big enough to amortise, small enough not to stall the server."""


async def run_commands(redis: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Run `commands` in one pipelined round trip; raw replies in order (an error reply is returned as
    its exception instance, not raised)."""
    if not commands:
        return []
    link = raw_link(redis)
    if link is not None:
        return await link.execute_raw(commands)
    pipe = redis.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))


async def send_commands(redis: Any, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
    """`run_commands`, returning once the commands are on their way: the future of their replies. On the
    batching connection, groups sent one after another run in that order while the caller computes; any
    other client (a cluster, a pipeline) runs them before this returns."""
    link = raw_link(redis)
    if link is not None:
        return await link.submit_raw(commands)
    replies: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    replies.set_result(await run_commands(redis, commands))
    return replies


def checked(replies: list[Any]) -> list[Any]:
    """`replies` of `run_commands`, after raising the first error reply among them."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class NetOps:
    """The net effect of a sequence of projection ops (see module docs)."""

    __slots__ = ("_cleared", "_expiries", "_fields", "_lists", "_sets", "_strings", "_zsets")

    def __init__(self) -> None:
        self._strings: dict[str, bytes | str] = {}
        self._zsets: dict[str, dict[str | bytes, str | bytes | None]] = {}
        self._sets: dict[str, set[str | bytes]] = {}
        self._lists: dict[str, list[str]] = {}
        self._fields: dict[str, dict[str | bytes, list[str]]] = {}
        self._expiries: dict[str, str | bytes] = {}
        self._cleared: set[str] = set()

    def add(self, ops: Iterable[Op], position: str) -> None:
        """Fold one event's ops (its stream id is `position`). A key written as two different types (a
        damaged history) is only noticed by `commands()`: this runs for every replayed event, so it does
        nothing it need not."""
        strings, zsets, expiries = self._strings, self._zsets, self._expiries
        for code, key, args in ops:
            if code == "S":
                strings[key] = args[0]
                if expiries:
                    expiries.pop(key, None)  # a SET clears a deadline, as live
            elif code == "Z":
                members = zsets.get(key)
                if members is None:
                    members = zsets[key] = {}
                members[args[1]] = args[0]
            elif code == "R":
                members = zsets.get(key)
                if members is None:
                    members = zsets[key] = {}
                members[args[0]] = None
            elif code == "H":
                self._fields.setdefault(key, {}).setdefault(args[0], []).append(position)
            elif code == "E":  # a deadline for the key's latest value (a later SET clears it)
                expiries[key] = args[0]
            elif code == "A":
                self._sets.setdefault(key, set()).add(args[0])
            else:
                self._lists.setdefault(key, []).append(position)

    def keys(self) -> list[str]:
        """Every key the folded ops touch, those whose net effect is nothing included."""
        return [*self._strings, *self._zsets, *self._sets, *self._lists, *self._fields]

    def cleared(self) -> list[str]:
        """The keys `commands()` may leave absent: ZSETs with a removal, keys with a deadline. Call after
        `commands()`."""
        return [*self._cleared, *self._expiries]

    def _check_types(self) -> None:
        kinds: tuple[dict[str, Any], ...] = (self._strings, self._zsets, self._sets, self._lists, self._fields)
        if sum(len(kind) for kind in kinds) != len(set().union(*kinds)):
            raise TypeError("a key is written as two types")

    def commands(self) -> list[tuple[Any, ...]]:
        """The commands that produce the net effect, given the keys held what this replay wrote before.
        Raises `TypeError` if a key is written as two types (the caller then applies the ops in order)."""
        self._check_types()
        out: list[tuple[Any, ...]] = []
        pairs: list[Any] = []
        for key, value in self._strings.items():
            pairs += (key, value)
            if len(pairs) >= 2 * _CHUNK:
                out.append(("MSET", *pairs))
                pairs = []
        if pairs:
            out.append(("MSET", *pairs))
        for key, deadline in self._expiries.items():  # after the MSET, which clears TTLs
            out.append(("PEXPIREAT", key, deadline))
        for key, members in self._zsets.items():
            added: list[Any] = []
            removed: list[Any] = []
            for member, score in members.items():
                if score is None:
                    removed.append(member)
                else:
                    added += (score, member)
            if removed:
                self._cleared.add(key)
            for i in range(0, len(removed), _CHUNK):
                out.append(("ZREM", key, *removed[i : i + _CHUNK]))
            for i in range(0, len(added), 2 * _CHUNK):
                out.append(("ZADD", key, *added[i : i + 2 * _CHUNK]))
        for key, set_members in self._sets.items():
            out.append(("SADD", key, *set_members))
        for key, positions in self._lists.items():
            out.append(("RPUSH", key, *positions))
        hashes: list[str] = []
        appends: list[Any] = []
        for key, fields in self._fields.items():  # one script call for up to _CHUNK fields
            hashes.append(key)
            appends.append(len(fields))
            for name, field_positions in fields.items():
                appends += (name, " ".join(field_positions))
            if len(appends) >= 2 * _CHUNK:
                out.append(("EVAL", APPEND_FIELDS_LUA, len(hashes), *hashes, *appends))
                hashes, appends = [], []
        if hashes:
            out.append(("EVAL", APPEND_FIELDS_LUA, len(hashes), *hashes, *appends))
        return out
