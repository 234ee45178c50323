"""Slots: the in-flight limit of a StreamState. Bounded, first come first served, and a cancelled waiter
never loses or leaks a slot."""

from __future__ import annotations

import asyncio

import pytest

from hitl_streams.streams._slots import Slots


async def _hold(slots: Slots, seconds: float, live: list[int], peak: list[int], order: list[int], n: int) -> None:
    if not slots.try_take():
        await slots.take()
    order.append(n)
    live[0] += 1
    peak[0] = max(peak[0], live[0])
    try:
        await asyncio.sleep(seconds)
    finally:
        live[0] -= 1
        slots.give()


async def test_never_more_than_the_slots_in_flight_and_waiters_served_in_order() -> None:
    slots = Slots(3)
    live, peak, order = [0], [0], []
    await asyncio.gather(*(_hold(slots, 0.005, live, peak, order, n) for n in range(20)))
    assert peak[0] == 3
    assert order == list(range(20))
    assert slots.free == 3


async def test_a_waiter_cancelled_while_waiting_leaves_the_count_intact() -> None:
    slots = Slots(1)
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.give()
    assert slots.free == 1


async def test_a_waiter_cancelled_just_after_it_got_a_slot_hands_it_on() -> None:
    slots = Slots(1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # `first` is handed the slot...
    first.cancel()  # ...and cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # so the slot went on to `second`
    assert slots.free == 0
    slots.give()
    assert slots.free == 1


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        Slots(0)
