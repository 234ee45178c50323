"""The wait loop (REF §6.3), in this one function: race the suspension against durable sleeps until a human
decides, a reminder is due, or the timeout comes.

Differences from the reference:
- the schedule is expanded lazily (an unbounded `every` never materializes, REF §10.1 #1) from an anchor
  the engine provides when it can (`primitives.now()`, REF §10.1 #7);
- the timeout wins a tie with a reminder; a timeout POSTs `…/timeout` and returns what the server says won,
  so a human decision that raced the timer is returned, not lost;
- a `/remind` answered `{"pending": false}` means it was decided but the resume never arrived (REF §10.2
  #8): the loop asks `…/timeout`, which returns the stored result, instead of waiting on;
- a reminder the server could not send (a 5xx: a channel is down) is logged and skipped, the wait goes
  on; a 4xx (say, an unknown escalation channel) is a mistake and raised.
The losing sleep of each race is cancelled (an engine timer, or the test harness's pending sleep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import msgspec

from ..errors import HitlError, HitlHttpError
from ..results import HumanResult, Resolved, TimedOut
from ..schedule import Fire
from .handles import Pending
from .primitives import Primitives
from .transport import Transport

__all__ = ["decode_result", "decode_results", "wait_loop"]

log = logging.getLogger("hitl_streams.client")


def decode_result(value: object) -> HumanResult:
    """A result as a resolver delivers it: a `HumanResult` already, its JSON object, or JSON text."""
    if isinstance(value, Resolved | TimedOut):
        return value
    try:
        decoded: HumanResult = (
            msgspec.json.decode(value, type=HumanResult)
            if isinstance(value, str | bytes)
            else msgspec.convert(value, HumanResult)
        )
        return decoded
    except msgspec.MsgspecError as exc:
        raise HitlError(f"hitl: resumed with something that is not a human result: {exc}") from None


def decode_results(answer: object, batch: bool) -> list[HumanResult]:
    """`{"result": ...}` or `{"results": [...]}` from a timeout route."""
    key = "results" if batch else "result"
    if not isinstance(answer, dict) or key not in answer:
        raise HitlError(f'hitl: the timeout route answered without "{key}"')
    raw = answer[key]
    if batch:
        if not isinstance(raw, list):
            raise HitlError('hitl: the batch timeout route answered "results" that is not a list')
        return [decode_result(item) for item in raw]
    return [decode_result(raw)]


async def _gather(suspensions: Sequence[Awaitable[Any]]) -> list[HumanResult]:
    """Every item's result, in item order (a batch completes when all of its items have)."""
    values = await asyncio.gather(*suspensions)
    return [decode_result(value) for value in values]


async def _race(primitives: Primitives, waiter: asyncio.Future[list[HumanResult]], seconds: float) -> bool:
    """Sleep `seconds` unless the human decides first; True iff they did."""
    if waiter.done():
        return True
    sleeper: asyncio.Future[Any] = asyncio.ensure_future(primitives.sleep(seconds))
    done, _ = await asyncio.wait([waiter, sleeper], return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        sleeper.cancel()
        return True
    sleeper.result()  # a failed timer is an error, not a wake-up
    return False


async def wait_loop(
    primitives: Primitives,
    transport: Transport,
    pending: Pending[Any],
    suspensions: Sequence[Awaitable[Any]],
    *,
    timeout: float | None,  # noqa: ASYNC109 (seconds; not an asyncio timeout)
    schedule: Iterator[Fire],
    anchor: datetime,
    clock: Callable[[], datetime] | None = None,
) -> list[HumanResult]:
    """Wait for `pending`'s results (item order). `timeout` in seconds (> 0) or None; `schedule` yields
    fires (`.at`, seconds after `anchor`; `.entry` with `remind_body()`) in time order, all before `timeout`.

    Elapsed time is the sum of the sleeps, or what `clock` (the engine's deterministic `now()`) says when
    that is later: a timer that fired late (an engine rounding sleeps up, a busy loop) leaves no drift.
    """
    collection = "batches" if pending.batch else "requests"
    base = f"/{collection}/{pending.id}"
    next_fire = next(schedule, None)
    if timeout is None and next_fire is None:
        return await _gather(suspensions)
    waiter = asyncio.ensure_future(_gather(suspensions))
    try:
        elapsed = 0.0
        while True:
            timeout_wake = None if timeout is None else timeout - elapsed
            fire_wake = None if next_fire is None else max(0.0, next_fire.at - elapsed)
            if fire_wake is not None and timeout_wake is not None and fire_wake >= timeout_wake:
                fire_wake = None  # the timeout wins a tie
            if fire_wake is None and timeout_wake is None:
                return await waiter
            wake = fire_wake if fire_wake is not None else timeout_wake
            assert wake is not None
            if wake > 0:
                if await _race(primitives, waiter, wake):
                    return waiter.result()
                elapsed += wake
                if clock is not None:
                    elapsed = max(elapsed, (clock() - anchor).total_seconds())
            elif waiter.done():
                return waiter.result()
            if fire_wake is None or (timeout is not None and elapsed >= timeout):
                return decode_results(await transport.post(f"{base}/timeout", {}), pending.batch)
            while next_fire is not None and next_fire.at <= elapsed:
                try:
                    answer = await transport.post(f"{base}/remind", next_fire.entry.remind_body())
                except HitlHttpError as exc:
                    if exc.status < 500:
                        raise  # a mistake (an unknown escalation channel): say so
                    # The server or a channel failed: a missed reminder must not end the wait.
                    log.warning("hitl: a reminder for %s failed (%s); waiting on", pending.id, exc.status)
                    answer = None
                if isinstance(answer, dict) and answer.get("pending") is False:
                    if waiter.done():
                        return waiter.result()
                    # Decided, but the resume has not arrived: the timeout route returns the stored result.
                    return decode_results(await transport.post(f"{base}/timeout", {}), pending.batch)
                next_fire = next(schedule, None)
    finally:
        if not waiter.done():
            waiter.cancel()
