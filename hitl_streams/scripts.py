"""The one Lua script every write goes through: check, append the event, project it, all atomically.

KEYS: [stream, op key, every key a guard or op names...]
ARGV: [op ttl seconds, event JSON, guard count, guards..., ops...]
  guard: "nx" keyIndex            the key must not exist
         "eq" keyIndex expected   the key must hold exactly `expected` (a compare-and-set on the bytes)
  op:    "S" k value | "Z" k score member | "R" k member | "A" k member | "P" k (RPUSH the new stream id)
         | "H" k field (append the new stream id to a HASH field's space-separated positions)
Reply: {1, id} written; {2, id} this op id already ran (a client retry), id is the first outcome;
       {0, n} guard n failed, nothing written.

Key types are checked before the XADD: Redis does not roll a script back when a command fails midway, so
every check that can fail runs before the first write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from redis.exceptions import NoScriptError

from .projection import Ops
from .replies import text

__all__ = ["APPEND_FIELDS_LUA", "COMMIT_LUA", "CommitOutcome", "CommitScript", "Guard"]

COMMIT_LUA = r"""
local done = redis.call('GET', KEYS[2])
if done then return {2, done} end
local i = 4
local nguards = tonumber(ARGV[3])
for g = 1, nguards do
  local kind, k = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if kind == 'nx' then
    if redis.call('EXISTS', k) == 1 then return {0, g} end
    i = i + 2
  else
    if redis.call('GET', k) ~= ARGV[i + 2] then return {0, g} end
    i = i + 3
  end
end
local first_op = i
local want = {S = 'string', Z = 'zset', R = 'zset', A = 'set', P = 'list', H = 'hash'}
local width = {S = 3, Z = 4, R = 3, A = 3, P = 2, H = 3}
while i <= #ARGV do
  local op = ARGV[i]
  if not want[op] then return redis.error_reply('hitl: unknown projection op ' .. tostring(op)) end
  local k = KEYS[tonumber(ARGV[i + 1])]
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= want[op] then
    return redis.error_reply('WRONGTYPE hitl: ' .. k .. ' is a ' .. t .. ', expected ' .. want[op])
  end
  i = i + width[op]
end
local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[2])
i = first_op
while i <= #ARGV do
  local op, k = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'S' then redis.call('SET', k, ARGV[i + 2])
  elseif op == 'Z' then redis.call('ZADD', k, ARGV[i + 2], ARGV[i + 3])
  elseif op == 'R' then redis.call('ZREM', k, ARGV[i + 2])
  elseif op == 'A' then redis.call('SADD', k, ARGV[i + 2])
  elseif op == 'H' then
    local had = redis.call('HGET', k, ARGV[i + 2])
    redis.call('HSET', k, ARGV[i + 2], had and (had .. ' ' .. id) or id)
  else redis.call('RPUSH', k, id) end
  i = i + width[op]
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
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
"""How long a write's outcome is kept for retries of that same write."""


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


class CommitScript:
    """Runs the commit script with EVALSHA, loading it with EVAL when the server does not know it
    (first use, or after a restart). Works with `Redis` and `RedisCluster`, decoded replies or not."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def run(self, stream: str, op_key: str, event: bytes, guards: Sequence[Guard], ops: Ops) -> CommitOutcome:
        # KEYS in first-use order; guards and ops name them by 1-based position.
        index: dict[str, int] = dict.fromkeys((stream, op_key, *(g.key for g in guards), *(op[1] for op in ops)), 0)
        for position, key in enumerate(index, start=1):
            index[key] = position
        argv: list[str | bytes | int] = [OP_TTL_SECONDS, event, len(guards)]
        add = argv.append
        for kind, key, expected in guards:
            add(kind)
            add(index[key])
            if kind == "eq":
                add(expected if expected is not None else b"")
        for code, key, args in ops:
            add(code)
            add(index[key])
            argv.extend(args)
        keys = list(index)
        try:
            reply = await self._redis.execute_command("EVALSHA", COMMIT_SHA, len(keys), *keys, *argv)
        except NoScriptError:
            reply = await self._redis.execute_command("EVAL", COMMIT_LUA, len(keys), *keys, *argv)
        return CommitOutcome(int(reply[0]), text(reply[1]))
