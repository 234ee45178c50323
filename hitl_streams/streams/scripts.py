"""The Lua scripts of the write path. Every write goes through `COMMIT_LUA`: check, append the event,
project it, all atomically. Replays append to audit fields with `APPEND_FIELDS_LUA`.

KEYS: [stream, op-id bucket, then one key per guard and one per op, in their order (repeats allowed)]
ARGV: [op ttl seconds, op id, event JSON, guard count, guards..., ops...]
  guard: "nx"                     its key must not exist
         "eq" expected            its key must hold exactly `expected` (a compare-and-set on the bytes)
  op:    "S" value | "Z" score member | "R" member | "A" member | "P" (RPUSH the new stream id)
         | "H" field (append the new stream id to a HASH field's space-separated positions)
Reply: {1, id} written; {2, id} this op id already ran (a client retry), id is the first outcome;
       {0, n} guard n failed, nothing written.

Key types are checked before the XADD: Redis does not roll a script back when a command fails midway, so
every check that can fail runs before the first write. Keys are named in KEYS, in use order, so the
script works on Redis Cluster (one hash tag per prefix) and the client needs no index of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ..history.projection import Ops
from .replies import text

__all__ = ["APPEND_FIELDS_LUA", "COMMIT_LUA", "CommitOutcome", "Guard", "as_eval", "commit_command", "commit_outcome"]

COMMIT_LUA = r"""
local done = redis.call('HGET', KEYS[2], ARGV[2])
if done then return {2, done} end
local i, k = 5, 3
local nguards = tonumber(ARGV[4])
for g = 1, nguards do
  if ARGV[i] == 'nx' then
    if redis.call('EXISTS', KEYS[k]) == 1 then return {0, g} end
    i = i + 1
  else
    if redis.call('GET', KEYS[k]) ~= ARGV[i + 1] then return {0, g} end
    i = i + 2
  end
  k = k + 1
end
local first_op, first_key = i, k
local want = {S = 'string', Z = 'zset', R = 'zset', A = 'set', P = 'list', H = 'hash'}
local width = {S = 2, Z = 3, R = 2, A = 2, P = 1, H = 2}
while i <= #ARGV do
  local op = ARGV[i]
  if not want[op] then return redis.error_reply('hitl: unknown projection op ' .. tostring(op)) end
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= want[op] then
    return redis.error_reply('WRONGTYPE hitl: ' .. KEYS[k] .. ' is a ' .. t .. ', expected ' .. want[op])
  end
  i, k = i + width[op], k + 1
end
local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[3])
i, k = first_op, first_key
while i <= #ARGV do
  local op, key = ARGV[i], KEYS[k]
  if op == 'S' then redis.call('SET', key, ARGV[i + 1])
  elseif op == 'Z' then redis.call('ZADD', key, ARGV[i + 1], ARGV[i + 2])
  elseif op == 'R' then redis.call('ZREM', key, ARGV[i + 1])
  elseif op == 'A' then redis.call('SADD', key, ARGV[i + 1])
  elseif op == 'H' then
    local had = redis.call('HGET', key, ARGV[i + 1])
    redis.call('HSET', key, ARGV[i + 1], had and (had .. ' ' .. id) or id)
  else redis.call('RPUSH', key, id) end
  i, k = i + width[op], k + 1
end
redis.call('HSET', KEYS[2], ARGV[2], id)
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {1, id}
"""
COMMIT_SHA = hashlib.sha1(COMMIT_LUA.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

APPEND_FIELDS_LUA = r"""
local i = 1
for k = 1, #KEYS do
  for _ = 1, tonumber(ARGV[i]) do
    local had = redis.call('HGET', KEYS[k], ARGV[i + 1])
    redis.call('HSET', KEYS[k], ARGV[i + 1], had and (had .. ' ' .. ARGV[i + 2]) or ARGV[i + 2])
    i = i + 2
  end
  i = i + 1
end
return #KEYS
"""
"""Replays: append positions to HASH fields. KEYS: hashes; ARGV, per hash in KEYS order: the number of
fields n, then n pairs of field and positions (space separated)."""

OP_TTL_SECONDS = 600
"""How long a write's outcome is kept for retries of that same write (from the first write of its
second's bucket)."""


class Guard(NamedTuple):
    """A precondition of a commit (a tuple: made on every write, so cheap to make)."""

    kind: Literal["nx", "eq"]
    key: str
    expected: bytes | str | None = None


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    status: int
    """1 written, 2 already written by this op id, 0 a guard failed."""
    value: str
    """The stream id (status 1 or 2), or the 1-based number of the failed guard (status 0)."""

    @property
    def written(self) -> bool:
        return self.status in (1, 2)


def commit_command(
    stream: str, op_bucket: str, op_id: str, event: bytes, guards: Sequence[Guard], ops: Ops
) -> list[str | bytes | int]:
    """The `EVALSHA` of `COMMIT_LUA` for one write, as a command list (send it with `execute_command(*it)`;
    on `NoScriptError`, `as_eval` gives the same call with the script's text)."""
    keys: list[str] = [stream, op_bucket]
    argv: list[str | bytes | int] = [OP_TTL_SECONDS, op_id, event, len(guards)]
    add_key, add = keys.append, argv.append
    for kind, key, expected in guards:
        add_key(key)
        add(kind)
        if kind == "eq":
            add(expected if expected is not None else b"")
    for code, key, args in ops:
        add_key(key)
        add(code)
        argv += args
    return ["EVALSHA", COMMIT_SHA, len(keys), *keys, *argv]


def as_eval(command: list[str | bytes | int]) -> list[str | bytes | int]:
    """`command` (from `commit_command`) as an `EVAL`, which also loads the script (first use, or after
    the server restarted)."""
    return ["EVAL", COMMIT_LUA, *command[2:]]


def commit_outcome(reply: Sequence[Any]) -> CommitOutcome:
    return CommitOutcome(int(reply[0]), text(reply[1]))
