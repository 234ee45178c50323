"""The Lua scripts of the write path. Every write goes through `COMMIT_LUA`: check, append the event,
project it, all atomically. Replays append to audit fields with `APPEND_FIELDS_LUA`.

KEYS: [stream, op-id bucket, pause key, then one key per guard and one per op, in their order (repeats
       allowed)]
ARGV: [op id, event JSON, guard codes, op codes, then each guard's arguments and each op's, in order]
  guard codes: one letter per guard: "n" its key must not exist,
               "e" (one argument: expected) its key must hold exactly `expected` (a compare-and-set)
  op codes:    one letter per op: "S" value | "Z" score member | "R" member | "A" member
               | "z" (ZADD the score and member of the last "Z") | "r" (ZREM the last member named by a
               "Z" or "R") | "h" (as "H", the field being that last member)
               | "P" (RPUSH the new stream id) | "H" field (append the new stream id to a HASH field's
               space-separated positions) | "E" unix-ms (PEXPIREAT: the key, already written, expires then;
               a time past deletes it)
               | "X" event (its key the stream: append one more event; the ops after it are its
               projection, "P" and "H" name its stream id) | "L" token ms (SET the lease key PX ms) | "U"
               token (DEL the lease key if it holds token). "L" and "U" write no projection: they take or
               give back a delivery lease in the same call as the write it goes with.
Reply: {1, id} written (the first event's id); {2, id} this op id already ran (a client retry), id is the
       first outcome;
       {0, n} guard n failed (0: the pause key exists, a rebuild is swapping), nothing written.

Redis does not roll a script back when a command fails midway, so everything that can fail runs before
the first write (the XADD): the guards' reads, and a read of every key an op writes that fails on a key
of the wrong type (ZCARD, SCARD, LLEN, and for "H" the HGET of the field, which the write then uses).
SET replaces a key of any type and PEXPIREAT accepts any type: those need no check. Two letters per
guard and op, not one argument each: every argument costs Redis a Lua string. Keys are named in KEYS, in
use order, so the script works on Redis Cluster (one hash tag per prefix) and the client needs no index
of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from ..history.projection import Ops
from .replies import text

__all__ = ["APPEND_FIELDS_LUA", "COMMIT_LUA", "Guard", "as_eval", "commit_command", "commit_outcome"]

OP_TTL_SECONDS = 600
"""How long a write's outcome is kept for retries of that same write (from the first write of its
second's bucket)."""

COMMIT_LUA = r"""
local call, pcall = redis.call, redis.pcall
local done = call('HGET', KEYS[2], ARGV[1])
if done then return {2, done} end
if call('EXISTS', KEYS[3]) == 1 then return {0, 0} end
local guards, ops, sub = ARGV[3], ARGV[4], string.sub
local i, k = 5, 4
for g = 1, #guards do
  if sub(guards, g, g) == 'n' then
    if call('EXISTS', KEYS[k]) == 1 then return {0, g} end
  else
    if call('GET', KEYS[k]) ~= ARGV[i] then return {0, g} end
    i = i + 1
  end
  k = k + 1
end
local function wrong(key, want)
  local t = call('TYPE', key)['ok']
  return redis.error_reply('WRONGTYPE hitl: ' .. key .. ' is a ' .. t .. ', expected ' .. want)
end
local first_op, first_key = i, k
local had, m = {}, nil
for j = 1, #ops do
  local op, key = sub(ops, j, j), KEYS[k]
  if op == 'S' or op == 'E' or op == 'X' or op == 'U' then i = i + 1
  elseif op == 'L' then i = i + 2
  elseif op == 'Z' or op == 'R' or op == 'z' or op == 'r' then
    if type(pcall('ZCARD', key)) == 'table' then return wrong(key, 'zset') end
    if op == 'Z' then m = ARGV[i + 1]; i = i + 2 elseif op == 'R' then m = ARGV[i]; i = i + 1 end
  elseif op == 'H' or op == 'h' then
    local f = m
    if op == 'H' then f = ARGV[i]; i = i + 1 end
    local name = key .. ' ' .. f
    if had[name] == nil then
      local value = pcall('HGET', key, f)
      if type(value) == 'table' then return wrong(key, 'hash') end
      had[name] = value
    end
  elseif op == 'A' then
    if type(pcall('SCARD', key)) == 'table' then return wrong(key, 'set') end
    i = i + 1
  elseif op == 'P' then
    if type(pcall('LLEN', key)) == 'table' then return wrong(key, 'list') end
  else return redis.error_reply('hitl: unknown projection op ' .. op) end
  k = k + 1
end
local first = call('XADD', KEYS[1], '*', 'event', ARGV[2])
local id = first
i, k, m = first_op, first_key, nil
local zs, zm
for j = 1, #ops do
  local op, key = sub(ops, j, j), KEYS[k]
  if op == 'S' then call('SET', key, ARGV[i]); i = i + 1
  elseif op == 'Z' then zs, zm = ARGV[i], ARGV[i + 1]; m = zm; call('ZADD', key, zs, zm); i = i + 2
  elseif op == 'z' then call('ZADD', key, zs, zm)
  elseif op == 'R' then m = ARGV[i]; call('ZREM', key, m); i = i + 1
  elseif op == 'r' then call('ZREM', key, m)
  elseif op == 'A' then call('SADD', key, ARGV[i]); i = i + 1
  elseif op == 'H' or op == 'h' then
    local f = m
    if op == 'H' then f = ARGV[i]; i = i + 1 end
    local name = key .. ' ' .. f
    local positions = had[name] and (had[name] .. ' ' .. id) or id
    had[name] = positions
    call('HSET', key, f, positions)
  elseif op == 'E' then call('PEXPIREAT', key, ARGV[i]); i = i + 1
  elseif op == 'P' then call('RPUSH', key, id)
  elseif op == 'X' then id = call('XADD', key, '*', 'event', ARGV[i]); i = i + 1
  elseif op == 'L' then call('SET', key, ARGV[i], 'PX', ARGV[i + 1]); i = i + 2
  else
    if pcall('GET', key) == ARGV[i] then call('DEL', key) end
    i = i + 1
  end
  k = k + 1
end
call('HSET', KEYS[2], ARGV[1], first)
if call('TTL', KEYS[2]) < 0 then call('EXPIRE', KEYS[2], OP_TTL) end
return {1, first}
""".replace("OP_TTL", str(OP_TTL_SECONDS))
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


class Guard(NamedTuple):
    """A precondition of a commit (a tuple: made on every write, so cheap to make)."""

    kind: Literal["nx", "eq"]
    key: str
    expected: bytes | str | None = None


def commit_command(
    stream: str,
    op_bucket: str,
    pause: str,
    op_id: str | bytes,
    event: bytes,
    guards: Sequence[Guard],
    ops: Ops,
    compare: tuple[str, bytes | str] | None = None,
) -> list[str | bytes | int]:
    """The `EVALSHA` of `COMMIT_LUA` for one write, as a command list (send it with `execute_command(*it)`;
    on `NoScriptError`, `as_eval` gives the same call with the script's text). `pause` is the key whose
    existence holds every write back (a rebuild's swap): its failure is guard 0. `compare` (key, bytes)
    is one more "eq" guard after `guards` (the subject of a read-modify-write: number len(guards) + 1)."""
    command: list[str | bytes | int] = ["EVALSHA", COMMIT_SHA, 0, stream, op_bucket, pause]
    add_key = command.append
    args: list[str | bytes | int] = []
    guard_codes = op_codes = ""
    for kind, key, expected in guards:
        add_key(key)
        if kind == "eq":
            guard_codes += "e"
            args.append(expected if expected is not None else b"")
        else:
            guard_codes += "n"
    if compare is not None:
        add_key(compare[0])
        guard_codes += "e"
        args.append(compare[1])
    # A member or score repeated from the op before travels once: a projection names one request's id in
    # every index it moves (2-4 ZADDs of the same score and id, ZREMs, its audit field), and every argument
    # costs a Lua string in Redis and a packed argument here. Tracked exactly as the script tracks it.
    last_z: tuple[str | bytes, ...] = ()
    member: str | bytes | None = None
    for code, key, op_args in ops.items:
        add_key(key)
        if code == "Z":
            if op_args == last_z:
                code = "z"
            else:
                last_z, member = op_args, op_args[1]
                args += op_args
        elif code == "R":
            if op_args[0] == member:
                code = "r"
            else:
                member = op_args[0]
                args += op_args
        elif code == "H" and op_args[0] == member:
            code = "h"
        else:
            args += op_args
        op_codes += code
    command[2] = len(command) - 3
    command += (op_id, event, guard_codes, op_codes)
    command += args
    return command


def as_eval(command: list[str | bytes | int]) -> list[str | bytes | int]:
    """`command` (from `commit_command`) as an `EVAL`, which also loads the script (first use, or after
    the server restarted)."""
    return ["EVAL", COMMIT_LUA, *command[2:]]


def commit_outcome(reply: Sequence[Any]) -> tuple[int, str]:
    """The script's reply as (status, value): status 1 written, 2 already written by this op id (value:
    the stream id, either way), 0 a guard failed (value: its number, 0 for the pause key)."""
    return int(reply[0]), text(reply[1])
